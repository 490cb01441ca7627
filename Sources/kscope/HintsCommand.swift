import ArgumentParser

// Placeholder: replaced by the guest agent issue (kscope hints read FILE|SNAPSHOT).
struct HintsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hints", abstract: "Read the guest agent's hint region (not yet built).")
  func run() throws { throw CommandFailure("kscope hints is not built yet") }
}
