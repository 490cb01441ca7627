import KscopeCore
import KscopeOS

/// Builds the per-frame class table from /proc/kpageflags and /proc/kpagecount (root only),
/// streaming 64 Ki frames at a time so memory stays flat whatever the guest's size: the table
/// is kept as runs, and the two 512 KiB read buffers are reused.
///
/// The colors come from `KernelPageFlagsClassifier` (the same rules `kscope color --kpageflags`
/// applies). It classifies one array starting at frame 0, so each chunk gets a classifier whose
/// kernel-image and RAM ranges are shifted by the chunk's first frame. Chunks start at multiples
/// of 64 Ki frames (256 MiB), and compound pages are naturally aligned to their size, so only a
/// gigantic page (1 GiB hugetlb) could span two chunks; its tails would then be classified by
/// their own flags instead of their head's.
public struct FrameTableScanner {
  public var flagsPath = "/proc/kpageflags"
  public var countsPath = "/proc/kpagecount"
  public var iomemPath = "/proc/iomem"
  static let chunkFrames = 1 << 16

  public init() {}

  public struct Result {
    public var table: FrameClassTable
    public var usedCounts: Bool
    public var usedResourceMap: Bool
  }

  public func scan(pageSize: UInt64) throws(AgentError) -> Result {
    guard let ffd = Files.openRead(flagsPath) else {
      throw AgentError("\(flagsPath): cannot open: \(Files.lastErrorText()) (the agent needs root)")
    }
    defer { Files.closeDescriptor(ffd) }
    let cfd = Files.openRead(countsPath)
    defer { if let cfd { Files.closeDescriptor(cfd) } }

    var image: [KernelImageRange] = []
    var ram: [Range<UInt64>]? = nil
    var usedResourceMap = false
    if let text = Files.readText(iomemPath) {
      let map = ResourceMap(text: text)
      if map.usable {
        image = map.kernelImage(pageSize: pageSize)
        ram = map.ramFrames(pageSize: pageSize)
        usedResourceMap = true
      }
    }

    let bytes = Self.chunkFrames * 8
    var flagBuffer = [UInt8](repeating: 0, count: bytes)
    var countBuffer = [UInt8](repeating: 0, count: bytes)
    var flags = [UInt64](repeating: 0, count: Self.chunkFrames)
    var counts = [UInt64](repeating: 0, count: Self.chunkFrames)
    var table = FrameClassTable(totalFrames: 0)
    var base: UInt64 = 0
    var usedCounts = cfd != nil
    while true {
      guard let n = Files.read(ffd, into: &flagBuffer, count: bytes, at: base * 8) else {
        throw AgentError("\(flagsPath): read failed at frame \(base): \(Files.lastErrorText())")
      }
      let frames = n / 8
      if frames == 0 { break }
      if usedCounts, let cfd {
        if Files.read(cfd, into: &countBuffer, count: frames * 8, at: base * 8) != frames * 8 {
          usedCounts = false
        }
      }
      Self.load(flagBuffer, frames, into: &flags)
      if usedCounts { Self.load(countBuffer, frames, into: &counts) }
      let classifier = KernelPageFlagsClassifier(
        kernelImage: Self.shift(image, by: base), ram: ram.map { Self.shift($0, by: base) })
      let entries = classifier.classify(
        flags: frames == flags.count ? flags : Array(flags[0..<frames]),
        mapCounts: usedCounts ? (frames == counts.count ? counts : Array(counts[0..<frames])) : nil)
      for e in entries { table.append(e, count: 1) }
      base += UInt64(frames)
      if base >= HintFormat.maxFrames - UInt64(Self.chunkFrames) { break }
      if n < bytes { break }
    }
    table.totalFrames = base
    return Result(table: table, usedCounts: usedCounts, usedResourceMap: usedResourceMap)
  }

  static func load(_ bytes: [UInt8], _ n: Int, into out: inout [UInt64]) {
    bytes.withUnsafeBytes { raw in
      for i in 0..<n { out[i] = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
    }
  }

  /// Ranges relative to a chunk starting at `base` (parts before it dropped).
  static func shift(_ ranges: [Range<UInt64>], by base: UInt64) -> [Range<UInt64>] {
    ranges.compactMap { r in
      guard r.upperBound > base else { return nil }
      return (max(r.lowerBound, base) - base)..<(r.upperBound - base)
    }
  }

  static func shift(_ ranges: [KernelImageRange], by base: UInt64) -> [KernelImageRange] {
    ranges.compactMap { r in
      guard r.frames.upperBound > base else { return nil }
      return KernelImageRange(
        frames: (max(r.frames.lowerBound, base) - base)..<(r.frames.upperBound - base), color: r.color)
    }
  }
}
