import KscopeCore

/// `kaleidoscope`: the colour policy.
/// - free and zero frames are never fetched (holes: zeros on first touch); free frames only when
///   the guest kernel allows it (`freeIsHole`);
/// - kernel code, kernel data and page tables are fetched before the clone resumes;
/// - page cache is read ahead in file order, by (device, inode, offset), not physical order;
/// - user code is fetched by mapped region (the run of user-code frames around the miss);
/// - user data gets a small physical read-ahead, kernel heap its aligned neighbours;
/// - background fetch backs off while misses arrive.
public struct KaleidoscopePolicy: ClonePolicy {
  public var name: String { "kaleidoscope" }
  /// Frames fetched with the miss: the next pages of the same file, of a user-data run, of a
  /// user-code region (each side).
  public static let fileBatch = 8
  public static let fileReadahead = 64
  public static let userDataReadahead: UInt64 = 4
  public static let userCodeRegion: UInt64 = 64
  public static let heapBlock: UInt64 = 8
  public var backoffMicros: UInt64 { 200 }

  let map: ColorMap
  let freeIsHole: Bool
  /// Page-cache frames of each file, in file order.
  let files: [FileKey: [UInt64]]
  /// For each page-cache frame covered by an extent: its file and position in `files[file]`.
  let filePosition: [UInt64: (key: FileKey, position: Int)]

  struct FileKey: Hashable, Sendable {
    var device: UInt32
    var inode: UInt64
  }

  public init(map: ColorMap, freeIsHole: Bool) {
    self.map = map
    self.freeIsHole = freeIsHole
    var byFile: [FileKey: [(index: UInt64, frame: UInt64)]] = [:]
    for e in map.extents {
      guard let f = e.file else { continue }
      let key = FileKey(device: f.device, inode: f.inode)
      for k in 0..<e.count where map.entry(at: e.start + k)?.color == .pageCache {
        byFile[key, default: []].append((f.index &+ k, e.start + k))
      }
    }
    var files: [FileKey: [UInt64]] = [:]
    var position: [UInt64: (key: FileKey, position: Int)] = [:]
    for (key, pages) in byFile {
      let ordered = pages.sorted { $0.index < $1.index }.map(\.frame)
      files[key] = ordered
      for (i, frame) in ordered.enumerated() { position[frame] = (key, i) }
    }
    self.files = files
    self.filePosition = position
  }

  func color(_ frame: UInt64) -> Color { map.entry(at: frame)?.color ?? .unknown }

  func isHole(_ color: Color) -> Bool { color == .zero || (color == .free && freeIsHole) }

  public func holes() -> [FrameRange] {
    map.runs.filter { isHole($0.color) }.map { FrameRange(start: $0.start, count: $0.count) }
  }

  public func beforeResume() -> [FrameRange] {
    map.runs.filter { [.kernelCode, .kernelData, .pageTable].contains($0.color) }
      .map { FrameRange(start: $0.start, count: $0.count) }
  }

  public func miss(frame: UInt64) -> PolicyPlan {
    let c = color(frame)
    if isHole(c) { return PolicyPlan(now: []) }
    switch c {
    case .pageCache:
      guard let (key, position) = filePosition[frame], let pages = files[key] else { break }
      let batchEnd = min(pages.count, position + Self.fileBatch)
      let aheadEnd = min(pages.count, position + Self.fileReadahead)
      return PolicyPlan(
        now: ranges(of: pages[position..<batchEnd]), later: ranges(of: pages[batchEnd..<aheadEnd]))
    case .userCode:
      return PolicyPlan(now: [sameColorRun(around: frame, color: c, radius: Self.userCodeRegion)])
    case .userData:
      return PolicyPlan(now: [sameColorRun(from: frame, color: c, count: Self.userDataReadahead)])
    case .kernelHeap:
      let base = frame - frame % Self.heapBlock
      let frames = (base..<min(base + Self.heapBlock, map.frameCount)).filter { color($0) == c }
      return PolicyPlan(now: ranges(of: frames))
    default: break
    }
    return PolicyPlan(now: [FrameRange(start: frame, count: 1)])
  }

  /// Frames of `color` contiguous with `frame`, at most `radius` on each side.
  func sameColorRun(around frame: UInt64, color c: Color, radius: UInt64) -> FrameRange {
    var lo = frame
    while lo > 0 && frame - lo < radius && color(lo - 1) == c { lo -= 1 }
    var hi = frame + 1
    while hi < map.frameCount && hi - frame <= radius && color(hi) == c { hi += 1 }
    return FrameRange(start: lo, count: hi - lo)
  }

  /// `frame` and up to `count - 1` following frames of the same color.
  func sameColorRun(from frame: UInt64, color c: Color, count: UInt64) -> FrameRange {
    var hi = frame + 1
    while hi < map.frameCount && hi - frame < count && color(hi) == c { hi += 1 }
    return FrameRange(start: frame, count: hi - frame)
  }
}
