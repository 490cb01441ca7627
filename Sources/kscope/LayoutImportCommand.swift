import ArgumentParser
import KscopeDebugInfo
import KscopeLayout

struct LayoutImportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "import",
    abstract: "Turn a Volatility ISF (e.g. from dwarf2json) into a kscope layout.",
    discussion: """
      Anonymous members are flattened, the layout is restricted to what kscope uses, and every \
      required type, member, enum and symbol is checked: a missing one is named and nothing \
      is written.
      """)

  @Argument(help: "An ISF JSON file (dwarf2json linux --elf vmlinux).")
  var isf: String

  @Option(name: .shortAndLong, help: "Write the layout to this file.")
  var output: String?

  @Option(help: "More structs, unions or enums to keep, comma-separated.")
  var types: String?

  @OptionGroup var outputOptions: OutputOptions

  func run() throws {
    let request = LayoutRequest.default.adding(types: parseTypeList(types))
    let layout = try layoutCall { () throws(DebugInfoError) in
      try LayoutFile.importISF(isf, request: request)
    }
    try emitLayout(layout, output: output, json: outputOptions.json)
  }
}
