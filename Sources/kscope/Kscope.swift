import ArgumentParser

@main
struct Kscope: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kscope",
    abstract: "VM state coloring and cloud micro-elasticity: color maps of guest memory.",
    discussion: """
      kscope classifies every page frame of a (guest) machine's physical memory by what it is,
      writes the result as a color map, and answers questions about color maps.
      """,
    subcommands: [
      ColorCommand.self, MapCommand.self, ColorsCommand.self, LayoutCommand.self,
      VMCommand.self, WorkloadCommand.self, HintsCommand.self,
    ])
}
