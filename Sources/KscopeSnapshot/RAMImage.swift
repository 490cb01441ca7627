import KscopeCore
import KscopeOS

/// Guest RAM in a host file (QEMU's memory-backend-file, live and paused or in a snapshot),
/// memory-mapped read-only.
public final class RAMImage: PhysicalMemory, @unchecked Sendable {
  public let file: MappedFile
  public let regions: [GuestRAMRegion]
  /// The file's data extents when it was mapped (nil: unknown, all may hold data). Probes that
  /// step through RAM skip holes with it: their cost follows what the file holds.
  let dataExtents: [Range<Int>]?

  /// Maps `path`; without `regions`, the whole file is RAM from guest physical 0.
  public convenience init(path: String, regions: [GuestRAMRegion]? = nil) throws {
    try self.init(file: try MappedFile(path: path), regions: regions)
  }

  /// Guest RAM in an already mapped file (a snapshot's, opened inside its directory).
  public init(file: MappedFile, regions: [GuestRAMRegion]? = nil) throws {
    self.file = file
    let r = regions ?? [GuestRAMRegion(guestPhysicalStart: 0, size: UInt64(file.size), fileOffset: 0)]
    for region in r where region.fileOffset > UInt64(file.size) || region.size > UInt64(file.size) - region.fileOffset
      || region.guestPhysicalStart > UInt64.max - region.size
    {
      throw SnapshotError.badImage(
        "\(file.path): \(file.size) bytes, but the layout puts guest RAM at file offset \(region.fileOffset) + \(region.size) or at physical \(region.guestPhysicalStart) + \(region.size)")
    }
    self.regions = r
    dataExtents = try? file.dataExtents()
  }

  public func mayHoldData(at physical: GuestPhysicalAddress, count: Int) -> Bool {
    let address = physical.rawValue
    guard let extents = dataExtents, count > 0, let r = region(containing: physical, count: count) else {
      return true
    }
    let lo = Int(r.fileOffset + (address - r.guestPhysicalStart))
    let hi = lo + count
    // The first extent ending after lo (extents are sorted and disjoint).
    var a = 0
    var b = extents.count
    while a < b {
      let m = (a + b) / 2
      if extents[m].upperBound <= lo { a = m + 1 } else { b = m }
    }
    return a < extents.count && extents[a].lowerBound < hi
  }

  @inline(__always)
  public func withBytes<T>(
    at address: GuestPhysicalAddress, count: Int, _ body: (UnsafeRawBufferPointer) -> T
  ) -> T? {
    guard count >= 0, let r = region(containing: address, count: count),
      let b = file.bytes(at: Int(r.fileOffset + (address.rawValue - r.guestPhysicalStart)), count: count)
    else { return nil }
    return body(b)
  }

  public func find(_ needle: [UInt8], from address: GuestPhysicalAddress) -> GuestPhysicalAddress? {
    let from = address.rawValue
    guard !needle.isEmpty, let base = file.base else { return nil }
    // Only the file's data is searched: a snapshot that claims many GiB in a sparse file costs
    // what it holds, not what it claims (reading its holes through the mapping would allocate
    // them). A match may end up to needle.count - 1 bytes into a hole (zeros).
    // The extents found when the file was mapped (walking them again costs 3-8 ms on tmpfs for
    // a 512 MiB file, and a note search calls this up to thousands of times).
    guard let extents = dataExtents ?? (try? file.dataExtents()) else { return nil }
    for r in regions.sorted(by: { $0.guestPhysicalStart < $1.guestPhysicalStart }) where r.end > from {
      let lo = Int(r.fileOffset + (max(from, r.guestPhysicalStart) - r.guestPhysicalStart))
      let hi = Int(r.fileOffset + r.size)
      for e in extents where e.upperBound > lo && e.lowerBound < hi {
        let start = max(e.lowerBound, lo)
        let end = min(e.upperBound + needle.count - 1, hi)
        guard end - start >= needle.count else { continue }
        if let at = Memory.find(needle, in: UnsafeRawBufferPointer(start: base + start, count: end - start)) {
          return GuestPhysicalAddress(r.guestPhysicalStart + UInt64(start - Int(r.fileOffset) + at))
        }
      }
    }
    return nil
  }

  /// A content digest of the whole RAM file with `algorithm` (the newest by default; a map's
  /// own algorithm to check the map against this image), hashed on two threads.
  public func contentDigest(algorithm: ImageDigest.Algorithm = .xxh3BlockTree) throws -> ImageDigest {
    switch algorithm {
    case .none: return .none
    case .xxh3BlockTree:
      let d = digestJob()
      d.start()
      return try d.finish()
    case .xxh64NonZeroBlocks:
      var h = XXH64()
      try file.forEachNonZeroBlock { offset, block in
        withUnsafeBytes(of: UInt64(offset).littleEndian) { h.update($0) }
        h.update(block)
      }
      return .xxh64(h.finish(), size: UInt64(file.size), algorithm: .xxh64NonZeroBlocks)
    case .xxh64:
      // Every byte: holes are hashed as the zeros they read as, without reading them.
      var h = XXH64()
      let zeros = [UInt8](repeating: 0, count: 1 << 16)
      var at = 0
      func zeroFill(to end: Int) {
        while at < end {
          let n = min(zeros.count, end - at)
          zeros.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
          at += n
        }
      }
      for e in dataExtents ?? [0..<file.size] {
        zeroFill(to: e.lowerBound)
        let lo = max(e.lowerBound, at)
        let hi = min(e.upperBound, file.size)
        if lo < hi, let b = file.bytes(at: lo, count: hi - lo) { h.update(b) }
        at = max(at, hi)
      }
      zeroFill(to: file.size)
      return .xxh64(h.finish(), size: UInt64(file.size), algorithm: .xxh64)
    }
  }

  /// The newest digest (`ImageDigest.Algorithm.xxh3BlockTree`) as work to share out: `start()`
  /// it early on a background thread, `finish()` it (the caller's thread joins in) when the
  /// other work is done.
  public func digestJob() -> BlockTreeDigest {
    BlockTreeDigest(file: file, extents: dataExtents)
  }
}
