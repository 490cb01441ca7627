import ArgumentParser

struct ColorsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "colors")
  func run() throws { throw CommandFailure("not built yet") }
}
