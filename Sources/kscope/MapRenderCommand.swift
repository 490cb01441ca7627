import ArgumentParser

// Placeholder: replaced by the render work (kscope map render MAP -o FILE.png).
struct MapRender: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "render", abstract: "Draw a color map as a PNG picture (not yet built).")
  func run() throws { throw CommandFailure("kscope map render is not built yet") }
}
