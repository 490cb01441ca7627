/// A maximal run of consecutive frames of one color.
public struct ColorRun: Sendable, Hashable {
  public var start: UInt64
  public var count: UInt64
  public var color: Color
  public init(start: UInt64, count: UInt64, color: Color) {
    self.start = start
    self.count = count
    self.color = color
  }
  public var end: UInt64 { start + count }
}

/// The identity of a cached file page: which file, and where in it.
public struct FileIdentity: Sendable, Hashable {
  /// The guest kernel's device number of the file's filesystem (its dev_t encoding).
  public var device: UInt32
  public var inode: UInt64
  /// Page index within the file (file offset / page size) of the extent's first frame.
  public var index: UInt64
  public init(device: UInt32, inode: UInt64, index: UInt64) {
    self.device = device
    self.inode = inode
    self.index = index
  }
}

/// Attributes of a run of frames: the file pages they cache (consecutive offsets), the path of
/// that file, the owning process. Extents are sorted by `start` and never overlap.
public struct AttributeExtent: Sendable, Hashable {
  public var start: UInt64
  public var count: UInt64
  public var file: FileIdentity?
  public var path: String?
  public var owner: UInt32?

  public init(
    start: UInt64, count: UInt64, file: FileIdentity? = nil, path: String? = nil,
    owner: UInt32? = nil
  ) {
    self.start = start
    self.count = count
    self.file = file
    self.path = path
    self.owner = owner
  }
  public var end: UInt64 { start + count }

  /// The part of this extent inside `lo..<hi` (file index shifted to match).
  func clipped(_ lo: UInt64, _ hi: UInt64) -> AttributeExtent {
    var e = self
    let s = max(start, lo)
    e.start = s
    e.count = min(end, hi) - s
    if var f = file {
      f.index += s - start
      e.file = f
    }
    return e
  }
}

/// A color map: one entry per guest page frame, with its run index and attributes.
///
/// Frames are numbered from 0 (frame i is guest physical address i * pageSize). Build one with
/// `init(header:entries:extents:)`; read one with `ColorMapFormat.decode`.
public struct ColorMap: Sendable {
  public var header: ColorMapHeader
  public let entries: [UInt16]
  /// Maximal runs of one color in frame order, covering every frame.
  public let runs: [ColorRun]
  /// For each color code, the indices into `runs` of that color's runs, in frame order.
  public let colorRuns: [[UInt32]]
  public let extents: [AttributeExtent]
  /// Frames per color code (index = code).
  public let totals: [UInt64]

  public var frameCount: UInt64 { UInt64(entries.count) }

  /// Builds the run index and totals. Extents must be sorted, non-overlapping and inside the map.
  public init(header: ColorMapHeader, entries: [UInt16], extents: [AttributeExtent] = []) {
    self.header = header
    self.entries = entries
    self.extents = extents
    var runs: [ColorRun] = []
    var totals = [UInt64](repeating: 0, count: Color.codeSpace)
    var i = 0
    let n = entries.count
    while i < n {
      let code = entries[i] & 0x1F
      var j = i + 1
      // A run's length is stored in 32 bits: split longer runs.
      while j < n && entries[j] & 0x1F == code && j - i < Int(UInt32.max) { j += 1 }
      runs.append(
        ColorRun(
          start: UInt64(i), count: UInt64(j - i),
          color: Color(rawValue: UInt8(code)) ?? .unknown))
      totals[Int(code)] += UInt64(j - i)
      i = j
    }
    self.runs = runs
    self.totals = totals
    self.colorRuns = ColorMap.indexByColor(runs)
  }

  /// Used by the decoder once it has validated the stored index.
  init(
    header: ColorMapHeader, entries: [UInt16], runs: [ColorRun], colorRuns: [[UInt32]],
    extents: [AttributeExtent], totals: [UInt64]
  ) {
    self.header = header
    self.entries = entries
    self.runs = runs
    self.colorRuns = colorRuns
    self.extents = extents
    self.totals = totals
  }

  static func indexByColor(_ runs: [ColorRun]) -> [[UInt32]] {
    var byColor = [[UInt32]](repeating: [], count: Color.codeSpace)
    for (k, r) in runs.enumerated() { byColor[Int(r.color.rawValue)].append(UInt32(k)) }
    return byColor
  }

  /// O(1): the entry of one frame, nil past the end.
  public func entry(at frame: UInt64) -> FrameEntry? {
    guard frame < frameCount else { return nil }
    return FrameEntry(rawValue: entries[Int(frame)])
  }

  public func count(of color: Color) -> UInt64 { totals[Int(color.rawValue)] }

  /// The attribute extent covering a frame, if any (binary search).
  public func extent(at frame: UInt64) -> AttributeExtent? {
    let k = firstExtent(endingAfter: frame)
    guard k < extents.count, extents[k].start <= frame else { return nil }
    return extents[k]
  }

  /// Index of the first run whose end is after `frame`.
  func firstRun(endingAfter frame: UInt64) -> Int {
    var lo = 0
    var hi = runs.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if runs[mid].end <= frame { lo = mid + 1 } else { hi = mid }
    }
    return lo
  }

  /// Index of the first extent whose end is after `frame`.
  func firstExtent(endingAfter frame: UInt64) -> Int {
    var lo = 0
    var hi = extents.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if extents[mid].end <= frame { lo = mid + 1 } else { hi = mid }
    }
    return lo
  }
}
