import ArgumentParser
import KscopeDebugInfo
import KscopeLayout

struct LayoutShowCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "show",
    abstract: "Print a layout: a summary, or one type like pahole -C.",
    discussion: """
      Members of anonymous structs and unions are shown flattened with absolute offsets; \
      bitfields as byte:bit and a length in bits.

      Example:
        kscope layout show Tests/KscopeLayoutTests/Recorded/6.1.0-56-cloud-amd64.json --type page
      """)

  @Argument(help: "A layout file (ISF JSON).")
  var file: String

  @Option(help: "A struct, union or enum to print.")
  var type: String?

  @OptionGroup var outputOptions: OutputOptions

  func run() throws {
    let layout = try layoutCall { () throws(DebugInfoError) in try LayoutFile.read(file) }
    do {
      if outputOptions.json {
        try printJSON(LayoutReport.json(layout, type: type, file: file).foundationValue)
      } else {
        print(try LayoutReport.text(layout, type: type, file: file))
      }
    } catch let error as LayoutError {
      throw CommandFailure("\(file): \(error.description)")
    }
  }
}
