/// Where a clone's registered guest RAM lies in its address space, and in the RAM file: the
/// regions of its hand-off, kept up to date as the clone unmaps parts (UFFD_EVENT_UNMAP) or moves
/// them (UFFD_EVENT_REMAP). Pure arithmetic, checked: the hand-off comes from another process.
public struct RegionTable: Sendable, Equatable {
  public struct Region: Sendable, Equatable {
    public var address: UInt64
    public var length: UInt64
    public var fileOffset: UInt64
    public init(address: UInt64, length: UInt64, fileOffset: UInt64) {
      self.address = address
      self.length = length
      self.fileOffset = fileOffset
    }
    var end: UInt64 { address + length }
  }

  /// Sorted by address, non-overlapping, none empty.
  public private(set) var regions: [Region]
  /// Splitting by many partial unmaps cannot grow the table past this.
  public static let maxRegions = 4096

  /// Checks the hand-off's regions: page-aligned, inside the address space and the RAM file
  /// (`fileSize` bytes), not overlapping; a failure saying why if any is not.
  public static func validated(_ regions: [Region], pageSize: UInt64, fileSize: UInt64) -> Result<
    RegionTable, RegionError
  > {
    var sorted: [Region] = []
    for r in regions {
      guard r.length > 0, r.address % pageSize == 0, r.length % pageSize == 0,
        r.fileOffset % pageSize == 0
      else {
        return .failure(RegionError("a region is empty or not page-aligned"))
      }
      let (end, o1) = r.address.addingReportingOverflow(r.length)
      let (fileEnd, o2) = r.fileOffset.addingReportingOverflow(r.length)
      guard !o1, !o2, end <= 1 << 57, fileEnd <= fileSize else {
        return .failure(RegionError("a region lies outside the address space or the RAM file"))
      }
      sorted.append(r)
    }
    sorted.sort { $0.address < $1.address }
    for k in sorted.indices.dropFirst() where sorted[k].address < sorted[k - 1].end {
      return .failure(RegionError("regions overlap"))
    }
    return .success(RegionTable(regions: sorted))
  }

  public struct RegionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
  }

  /// The RAM-file offset of `address`, if a region holds it.
  public func fileOffset(of address: UInt64) -> UInt64? {
    // Binary search: the last region starting at or below the address.
    var lo = 0
    var hi = regions.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if regions[mid].address <= address { lo = mid + 1 } else { hi = mid }
    }
    guard lo > 0 else { return nil }
    let r = regions[lo - 1]
    guard address < r.end else { return nil }
    return r.fileOffset + (address - r.address)
  }

  /// Forgets [start, end): unmapped. Returns the pieces removed (with their file offsets).
  @discardableResult
  public mutating func remove(start: UInt64, end: UInt64) -> [Region] {
    guard start < end else { return [] }
    var kept: [Region] = []
    var cut: [Region] = []
    for r in regions {
      guard r.address < end && start < r.end else {
        kept.append(r)
        continue
      }
      if r.address < start {
        kept.append(Region(address: r.address, length: start - r.address, fileOffset: r.fileOffset))
      }
      let a = max(r.address, start)
      let b = min(r.end, end)
      cut.append(Region(address: a, length: b - a, fileOffset: r.fileOffset + (a - r.address)))
      if end < r.end {
        kept.append(
          Region(address: end, length: r.end - end, fileOffset: r.fileOffset + (end - r.address)))
      }
    }
    regions = kept
    return cut
  }

  /// [from, from+length) now lies at [to, to+length) (mremap). False if the addresses overflow
  /// or the table would grow too large (the caller stops serving the clone).
  public mutating func move(from: UInt64, to: UInt64, length: UInt64) -> Bool {
    let (fromEnd, o1) = from.addingReportingOverflow(length)
    let (toEnd, o2) = to.addingReportingOverflow(length)
    guard !o1, !o2, length > 0 else { return false }
    // What lay at the destination is replaced by the move.
    remove(start: to, end: toEnd)
    let moved = remove(start: from, end: fromEnd)
    for var m in moved {
      m.address = m.address - from + to
      regions.append(m)
    }
    regions.sort { $0.address < $1.address }
    return regions.count <= Self.maxRegions
  }

  /// False once partial unmaps have split the table past `maxRegions`.
  public var isWithinBounds: Bool { regions.count <= Self.maxRegions }
}
