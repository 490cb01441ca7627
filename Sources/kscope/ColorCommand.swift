import ArgumentParser

struct ColorCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "color")
  func run() throws { throw CommandFailure("not built yet") }
}
