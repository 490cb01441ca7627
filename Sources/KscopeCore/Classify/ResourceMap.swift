/// One line of the kernel's resource map (/proc/iomem): "  00100000-bffd9fff : System RAM".
public struct ResourceEntry: Sendable, Equatable {
  public var range: ClosedRange<UInt64>
  public var name: String
  /// Nesting depth (two spaces of indentation per level).
  public var depth: Int
}

/// Parses /proc/iomem. Lines that do not parse are skipped and counted, so a partial or odd
/// file still yields what it can. Read as non-root, every address is 0: callers check `usable`.
public struct ResourceMap: Sendable {
  public var entries: [ResourceEntry]
  public var skippedLines: Int

  public init(text: String) {
    var entries: [ResourceEntry] = []
    var skipped = 0
    for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
      let depth = line.prefix { $0 == " " }.count / 2
      let body = line.drop { $0 == " " }
      guard let colon = body.firstRange(of: " : ") else {
        skipped += 1
        continue
      }
      let span = body[..<colon.lowerBound].split(separator: "-")
      guard span.count == 2, let lo = UInt64(span[0], radix: 16),
        let hi = UInt64(span[1], radix: 16), lo <= hi
      else {
        skipped += 1
        continue
      }
      entries.append(
        ResourceEntry(range: lo...hi, name: String(body[colon.upperBound...]), depth: depth))
    }
    self.entries = entries
    self.skippedLines = skipped
  }

  /// False when addresses are hidden (the file was read without CAP_SYS_ADMIN).
  public var usable: Bool { entries.contains { $0.range.upperBound != 0 } }

  /// Frame ranges of top-level System RAM.
  public func ramFrames(pageSize: UInt64) -> [Range<UInt64>] {
    entries.filter { $0.depth == 0 && $0.name == "System RAM" }.map {
      ($0.range.lowerBound / pageSize)..<($0.range.upperBound / pageSize + 1)
    }
  }

  /// The kernel image as frame ranges: "Kernel code" is kernel-code; "Kernel rodata",
  /// "Kernel data" and "Kernel bss" are kernel-data.
  public func kernelImage(pageSize: UInt64) -> [KernelImageRange] {
    entries.compactMap { e in
      let color: Color
      switch e.name {
      case "Kernel code": color = .kernelCode
      case "Kernel rodata", "Kernel data", "Kernel bss": color = .kernelData
      default: return nil
      }
      return KernelImageRange(
        frames: (e.range.lowerBound / pageSize)..<(e.range.upperBound / pageSize + 1),
        color: color)
    }
  }
}
