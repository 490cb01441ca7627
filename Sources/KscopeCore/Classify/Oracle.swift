/// Checks a color map against the kernel's own view of its pages (/proc/kpageflags taken in
/// the guest right before the pause): the classes both can name, and how often they agree.
public enum OracleClass: String, CaseIterable, Sendable {
  case free, slab, pageTable = "page-table", anon, pageCache = "page-cache", other

  /// The colors of ours that count as agreeing with this class.
  public var agreeing: Set<Color> {
    switch self {
    case .free: [.free]
    case .slab: [.kernelHeap]
    case .pageTable: [.pageTable]
    case .anon: [.userData]
    case .pageCache: [.pageCache, .userCode]
    case .other: []
    }
  }

  /// The kernel's class of a frame from its flags, tested in the order that keeps 6.12's
  /// slab-with-anon frames slab: buddy, slab, page table, anon, file LRU.
  public static func of(flags f: UInt64) -> OracleClass {
    if f & KPF.buddy != 0 { return .free }
    if f & KPF.slab != 0 { return .slab }
    if f & KPF.pgtable != 0 { return .pageTable }
    if f & KPF.anon != 0 { return .anon }
    if f & KPF.lru != 0 { return .pageCache }
    return .other
  }
}

public struct OracleComparison: Sendable {
  public struct ClassResult: Sendable {
    public var oracleClass: OracleClass
    /// Frames the kernel puts in this class.
    public var frames: Int
    /// Of those, frames we colored alike.
    public var agreeing: Int
    /// Frames we colored alike that the kernel puts elsewhere.
    public var extra: Int
    public var agreement: Double { frames == 0 ? 1 : Double(agreeing) / Double(frames) }
  }
  public var classes: [ClassResult]
  /// (kernel class, our color) -> frames.
  public var matrix: [OracleClass: [Color: Int]]
  public var comparedFrames: Int

  /// Compares frame by frame. Compound tail pages take their head's class, as they do in
  /// kscope's own rules (6.12 marks slab only on the head).
  public init(entries: [UInt16], flags: [UInt64]) {
    let n = min(entries.count, flags.count)
    var matrix: [OracleClass: [Color: Int]] = [:]
    var counts: [OracleClass: (Int, Int, Int)] = [:]
    var head: OracleClass? = nil
    for i in 0..<n {
      let f = flags[i]
      let k: OracleClass
      if f & KPF.compoundTail != 0, let h = head, f & KPF.buddy == 0 {
        k = h
      } else {
        k = OracleClass.of(flags: f)
      }
      if f & KPF.compoundHead != 0 { head = k } else if f & KPF.compoundTail == 0 { head = nil }
      let c = FrameEntry(rawValue: entries[i]).color
      matrix[k, default: [:]][c, default: 0] += 1
      var t = counts[k] ?? (0, 0, 0)
      t.0 += 1
      if k.agreeing.contains(c) { t.1 += 1 }
      counts[k] = t
    }
    var results: [ClassResult] = []
    for k in OracleClass.allCases where k != .other {
      let t = counts[k] ?? (0, 0, 0)
      var extra = 0
      for (other, row) in matrix where other != k {
        for (c, v) in row where k.agreeing.contains(c) { extra += v }
      }
      results.append(ClassResult(oracleClass: k, frames: t.0, agreeing: t.1, extra: extra))
    }
    self.classes = results
    self.matrix = matrix
    self.comparedFrames = n
  }
}
