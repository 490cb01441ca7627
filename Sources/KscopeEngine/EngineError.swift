/// An engine failure: what went wrong, one line (the OS layer's errors carry their errno text).
public struct EngineError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
