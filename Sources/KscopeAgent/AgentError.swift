/// Why the agent could not do something; one line for its log.
public struct AgentError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
