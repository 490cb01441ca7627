import ArgumentParser

struct LayoutCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "layout",
    abstract:
      "Kernel layouts (symbols, struct offsets, enums) from a guest vmlinux or an ISF file.",
    discussion: """
      A layout is a Volatility 3 ISF JSON file restricted to what kscope's memory walkers use.
        kscope layout extract /var/cache/kscope/kernels/6.1/vmlinux -o 6.1.json
        kscope layout show 6.1.json --type page
        kscope layout import dwarf2json-output.json -o 6.1.json
      """,
    subcommands: [LayoutExtractCommand.self, LayoutShowCommand.self, LayoutImportCommand.self])
}
