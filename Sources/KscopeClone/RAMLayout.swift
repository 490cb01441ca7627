import KscopeSnapshot

/// Where guest physical memory lies in a RAM file: the snapshot model's regions (guest physical
/// start, size, file offset), as a manifest records them (q35 splits RAM around the PCI hole),
/// with the engine's translations between frames and file offsets.
public struct RAMLayout: Equatable, Sendable {
  public let segments: [GuestRAMRegion]
  public let pageSize: UInt64
  /// Bytes of RAM file the segments cover (the highest end).
  public let fileSize: UInt64

  public struct LayoutError: Error, Sendable, CustomStringConvertible {
    public let description: String
  }

  /// Checks the segments (they come from a manifest: untrusted): page-aligned, no overflow,
  /// sorted and non-overlapping in both spaces, at most 64.
  public init(segments: [GuestRAMRegion], pageSize: UInt64 = 4096) throws(LayoutError) {
    guard !segments.isEmpty, segments.count <= 64 else {
      throw LayoutError(description: "RAM layout has \(segments.count) segments (expected 1...64)")
    }
    var fileEnd: UInt64 = 0
    var lastPhys: UInt64 = 0
    var lastFile: UInt64 = 0
    for (k, s) in segments.enumerated() {
      let (pe, o1) = s.guestPhysicalStart.addingReportingOverflow(s.size)
      let (fe, o2) = s.fileOffset.addingReportingOverflow(s.size)
      guard !o1, !o2, s.size > 0, s.size % pageSize == 0, s.guestPhysicalStart % pageSize == 0,
        s.fileOffset % pageSize == 0, pe <= 1 << 52
      else { throw LayoutError(description: "RAM segment \(k) is not page-aligned or overflows") }
      guard k == 0 || (s.guestPhysicalStart >= lastPhys && s.fileOffset >= lastFile) else {
        throw LayoutError(description: "RAM segment \(k) overlaps or is out of order")
      }
      lastPhys = pe
      lastFile = fe
      fileEnd = max(fileEnd, fe)
    }
    self.segments = segments
    self.pageSize = pageSize
    self.fileSize = fileEnd
  }

  /// Frames of guest physical memory the segments span (from 0 to the highest end): the size
  /// of a color map of this guest.
  public var frameCount: UInt64 {
    (segments.map { $0.guestPhysicalStart + $0.size }.max() ?? 0) / pageSize
  }

  /// File offset of a guest frame, nil if no segment holds it.
  public func fileOffset(frame: UInt64) -> UInt64? {
    let (pa, o) = frame.multipliedReportingOverflow(by: pageSize)
    guard !o else { return nil }
    for s in segments where pa >= s.guestPhysicalStart && pa - s.guestPhysicalStart < s.size {
      return s.fileOffset + (pa - s.guestPhysicalStart)
    }
    return nil
  }

  /// The guest frame at a file offset, nil if no segment holds it.
  public func frame(fileOffset: UInt64) -> UInt64? {
    for s in segments where fileOffset >= s.fileOffset && fileOffset - s.fileOffset < s.size {
      return (s.guestPhysicalStart + (fileOffset - s.fileOffset)) / pageSize
    }
    return nil
  }

  /// Ranges of frames that `range` covers and that lie in RAM, each contiguous in the file.
  public func fileRuns(_ range: FrameRange) -> [(frame: UInt64, fileOffset: UInt64, count: UInt64)] {
    var out: [(UInt64, UInt64, UInt64)] = []
    for s in segments {
      let first = s.guestPhysicalStart / pageSize
      let end = first + s.size / pageSize
      let lo = max(first, range.start)
      let hi = min(end, range.end)
      if lo < hi { out.append((lo, s.fileOffset + (lo - first) * pageSize, hi - lo)) }
    }
    return out
  }
}
