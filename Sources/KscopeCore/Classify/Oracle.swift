/// Checks a color map against the kernel's own view of its pages (/proc/kpageflags taken in
/// the guest right before the pause, with the guest's /proc/iomem for the kernel image and
/// RAM): every frame the kernel can name is compared, in both directions.
public enum OracleClass: String, CaseIterable, Sendable {
  case free, slab, pageTable = "page-table", anon, pageCache = "page-cache"
  case kernelCode = "kernel-code", kernelData = "kernel-data", zero, reserved
  case kernelOther = "kernel-other"

  /// The class the kernel's flags give a frame, from `KernelPageFlagsClassifier`'s color; nil
  /// where the flags name nothing (a frame with no flags at all: a free page on a per-CPU list
  /// and a flagless kernel allocation look the same).
  public init?(kernelColor c: Color) {
    switch c {
    case .userCode: self = .pageCache  // never produced from flags; kept total
    case .unknown: return nil
    default: self.init(ours: c)
    }
  }

  /// The class one of our colors claims; nil for `unknown` (claims nothing).
  public init?(ours c: Color) {
    switch c {
    case .free: self = .free
    case .kernelHeap: self = .slab
    case .pageTable: self = .pageTable
    case .userData: self = .anon
    case .pageCache, .userCode: self = .pageCache
    case .kernelCode: self = .kernelCode
    case .kernelData: self = .kernelData
    case .zero: self = .zero
    case .reserved: self = .reserved
    case .kernelOther: self = .kernelOther
    case .unknown: return nil
    }
  }
}

public struct OracleComparison: Sendable {
  public struct ClassResult: Sendable {
    public var oracleClass: OracleClass
    /// Frames the kernel puts in this class.
    public var frames: Int
    /// Of those, frames we colored alike.
    public var agreeing: Int
    /// Frames we put in this class that the kernel puts in another class (precision errors).
    public var extra: Int
    /// Frames we put in this class that the kernel names no class for (neither right nor wrong).
    public var unnamed: Int
    /// Recall: the share of the kernel's frames we colored alike.
    public var agreement: Double { frames == 0 ? 1 : Double(agreeing) / Double(frames) }
    public var recall: Double { agreement }
    /// Precision: the share of our frames in this class (that the kernel names) it agrees with.
    public var precision: Double { agreeing + extra == 0 ? 1 : Double(agreeing) / Double(agreeing + extra) }
  }
  public var classes: [ClassResult]
  /// (kernel class, our color) -> frames, for frames the kernel names.
  public var matrix: [OracleClass: [Color: Int]]
  /// Our colors for the frames the kernel names no class for.
  public var unnamed: [Color: Int]
  public var comparedFrames: Int

  /// Compares frame by frame. The kernel's class is `KernelPageFlagsClassifier`'s color of
  /// the frame (compound tails take their head's, as 6.12 marks slab only on the head) with the
  /// guest's kernel image and RAM ranges from its /proc/iomem; without them the image is not
  /// told apart from other reserved memory.
  public init(
    entries: [UInt16], flags: [UInt64], kernelImage: [KernelImageRange] = [], ram: [Range<UInt64>]? = nil
  ) {
    let n = min(entries.count, flags.count)
    let kernel = KernelPageFlagsClassifier(kernelImage: kernelImage, ram: ram)
      .classify(flags: Array(flags.prefix(n)), mapCounts: nil)
    var matrix: [OracleClass: [Color: Int]] = [:]
    var unnamed: [Color: Int] = [:]
    var frames: [OracleClass: Int] = [:]
    var agreeing: [OracleClass: Int] = [:]
    var extra: [OracleClass: Int] = [:]
    var unnamedOurs: [OracleClass: Int] = [:]
    for i in 0..<n {
      let c = FrameEntry(rawValue: entries[i]).color
      let ours = OracleClass(ours: c)
      guard let k = OracleClass(kernelColor: FrameEntry(rawValue: kernel[i]).color) else {
        unnamed[c, default: 0] += 1
        if let ours { unnamedOurs[ours, default: 0] += 1 }
        continue
      }
      matrix[k, default: [:]][c, default: 0] += 1
      frames[k, default: 0] += 1
      if ours == k {
        agreeing[k, default: 0] += 1
      } else if let ours {
        extra[ours, default: 0] += 1
      }
    }
    classes = OracleClass.allCases.map {
      ClassResult(
        oracleClass: $0, frames: frames[$0] ?? 0, agreeing: agreeing[$0] ?? 0, extra: extra[$0] ?? 0,
        unnamed: unnamedOurs[$0] ?? 0)
    }
    self.matrix = matrix
    self.unnamed = unnamed
    comparedFrames = n
  }

  /// One Markdown table row per guest: per class "agreeing/frames" (recall), then the frames
  /// put in a class the kernel names differently (precision errors, summed), then the frames
  /// the kernel names nothing for and what we made of them.
  public static func markdownTable(_ rows: [(guest: String, comparison: OracleComparison)]) -> String {
    let names = OracleClass.allCases.map(\.rawValue)
    var out = "| guest | " + names.joined(separator: " | ") + " | misplaced | no kernel class |\n"
    out += "|---" + String(repeating: "|---", count: names.count + 2) + "|\n"
    for (guest, cmp) in rows {
      let cells = cmp.classes.map { "\($0.agreeing)/\($0.frames)" }
      let misplaced = cmp.classes.reduce(0) { $0 + $1.extra }
      let total = cmp.unnamed.values.reduce(0, +)
      let split = cmp.unnamed.sorted { ($0.value, $1.key.name) > ($1.value, $0.key.name) }
        .map { "\($0.key.name) \($0.value)" }.joined(separator: ", ")
      out += "| \(guest) | " + cells.joined(separator: " | ") + " | \(misplaced) | \(total)"
        + (split.isEmpty ? "" : " (\(split))") + " |\n"
    }
    return out
  }
}
