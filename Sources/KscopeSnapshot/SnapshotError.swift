/// Why a snapshot or a RAM file cannot be read. Each description is the one line a user sees.
public enum SnapshotError: Error, Sendable, Equatable, CustomStringConvertible {
  /// A snapshot directory is incomplete, or its manifest is damaged or hostile.
  case badSnapshot(String)
  /// A RAM file does not hold the regions its layout gives.
  case badImage(String)

  public var description: String {
    switch self {
    case .badSnapshot(let m): "bad snapshot: \(m)"
    case .badImage(let m): m
    }
  }
}
