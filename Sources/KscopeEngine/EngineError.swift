import KscopeOS

/// An engine failure: the operation and what the OS said.
public struct EngineError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }

  /// From a C helper's -errno result.
  static func os(_ operation: String, _ result: Int32) -> EngineError {
    EngineError("\(operation): \(OSError.text(errno: -result))")
  }
}

/// Throws for a negative (-errno) result of a CKscopeLinux helper.
@discardableResult
func check(_ operation: @autoclosure () -> String, _ result: Int32) throws(EngineError) -> Int32 {
  if result < 0 { throw EngineError.os(operation(), result) }
  return result
}
