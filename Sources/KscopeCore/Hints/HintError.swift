/// Why a hint region was rejected. Each description is one line naming the problem; callers
/// prefix the path. The classes follow the words: malformed, truncated, oversized,
/// inconsistent, stale.
public enum HintError: Error, Sendable, Equatable, CustomStringConvertible {
  /// All zero where the magic should be: nothing was ever published.
  case empty
  case notAHintRegion
  case unsupportedVersion(UInt16)
  case truncated(size: Int, expected: UInt64)
  case oversized(what: String, count: UInt64, limit: UInt64)
  /// The region is larger than its header says.
  case trailingBytes(size: Int, expected: UInt64)
  /// The generation was odd: the agent was writing.
  case staleWriting(generation: UInt64)
  /// The generation moved while the host copied the region.
  case staleChanged(before: UInt64, after: UInt64)
  case checksumMismatch(stored: UInt64, computed: UInt64)
  case malformed(String)
  case inconsistent(String)
  /// Reading the region failed (I/O); not the guest's fault.
  case unreadable(String)

  public var description: String {
    switch self {
    case .empty: "empty hint region: nothing published (is the agent running?)"
    case .notAHintRegion: "not a kscope hint region (bad magic)"
    case .unsupportedVersion(let v):
      "unsupported hint format version \(v) (this kscope reads version \(HintFormat.version))"
    case .truncated(let n, let e): "truncated: \(n) bytes but the header says \(e)"
    case .oversized(let what, let n, let limit):
      "oversized: \(n) \(what) exceeds the limit of \(limit)"
    case .trailingBytes(let n, let e):
      "oversized: \(n) bytes but the header says the region has \(e)"
    case .staleWriting(let g): "stale: the agent was writing (generation \(g) is odd)"
    case .staleChanged(let a, let b):
      "stale: the generation changed from \(a) to \(b) while reading"
    case .checksumMismatch(let s, let c):
      "damaged: checksum mismatch (stored \(hex64(s)), computed \(hex64(c)))"
    case .malformed(let why): "malformed: \(why)"
    case .inconsistent(let why): "inconsistent: \(why)"
    case .unreadable(let why): "unreadable: \(why)"
    }
  }
}
