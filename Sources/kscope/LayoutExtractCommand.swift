import ArgumentParser
import KscopeDebugInfo
import KscopeLayout

struct LayoutExtractCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "extract",
    abstract: "Extract a kernel layout from a vmlinux's ELF symbols and DWARF.",
    discussion: """
      Without -o the layout (ISF JSON) goes to standard output; with -o it is written \
      atomically and a summary is printed. Nothing is written unless every required type, \
      member, enum and symbol was found.
      """)

  @Argument(help: "The guest kernel's vmlinux with DWARF (from the -dbg package).")
  var vmlinux: String

  @Option(name: .shortAndLong, help: "Write the layout to this file.")
  var output: String?

  @Option(help: "More structs, unions or enums to record, comma-separated.")
  var types: String?

  @OptionGroup var outputOptions: OutputOptions

  func run() throws {
    let request = LayoutRequest.default.adding(types: parseTypeList(types))
    let layout = try layoutCall { () throws(DebugInfoError) in
      try LayoutExtractor.extract(vmlinux: vmlinux, request: request)
    }
    try emitLayout(layout, output: output, json: outputOptions.json)
  }
}
