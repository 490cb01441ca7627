/// Why a file is not a usable color map. Each description is one line naming the problem;
/// callers prefix the path.
public enum ColorMapError: Error, Sendable, Equatable, CustomStringConvertible {
  case tooShort(size: Int)
  case notAColorMap
  case unsupportedVersion(UInt16)
  case badHeader(String)
  case truncated(size: Int, expected: UInt64)
  case trailingBytes(size: Int, expected: UInt64)
  case checksumMismatch(stored: UInt64, computed: UInt64)
  case oversized(what: String, count: UInt64, limit: UInt64)
  case missingSection(String)
  case unknownRequiredSection(kind: UInt32)
  case badSection(String, reason: String)
  case badFrame(frame: UInt64, code: UInt8)
  case badTotals(color: String, stored: UInt64, counted: UInt64)
  case badRunIndex(String)
  case badAttributes(String)
  case badMetadata(String)

  public var description: String {
    switch self {
    case .tooShort(let n):
      "truncated: \(n) bytes is too short for a color map (header and trailer need 144)"
    case .notAColorMap: "not a kscope color map (bad magic)"
    case .unsupportedVersion(let v):
      "unsupported color map version \(v) (this kscope reads version \(ColorMapFormat.version))"
    case .badHeader(let why): "bad header: \(why)"
    case .truncated(let n, let e): "truncated: the file has \(n) bytes but its header says \(e)"
    case .trailingBytes(let n, let e):
      "damaged: the file has \(n) bytes but its header says \(e) (trailing bytes)"
    case .checksumMismatch(let s, let c):
      "damaged: checksum mismatch (stored \(hex64(s)), computed \(hex64(c)))"
    case .oversized(let what, let n, let limit):
      "oversized count: \(n) \(what) exceeds the limit of \(limit)"
    case .missingSection(let name): "missing section: \(name)"
    case .unknownRequiredSection(let k):
      "unknown required section kind \(k) (written by a newer kscope?)"
    case .badSection(let name, let why): "bad \(name) section: \(why)"
    case .badFrame(let f, let code): "bad frame entry: frame \(f) has unknown color code \(code)"
    case .badTotals(let c, let s, let n):
      "bad color totals: \(c) is stored as \(s) frames but the map has \(n)"
    case .badRunIndex(let why): "bad run index: \(why)"
    case .badAttributes(let why): "bad attribute extents: \(why)"
    case .badMetadata(let why): "bad metadata: \(why)"
    }
  }
}
