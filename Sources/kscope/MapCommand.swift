import ArgumentParser

struct MapCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "map")
  func run() throws { throw CommandFailure("not built yet") }
}
