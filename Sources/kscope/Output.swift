import ArgumentParser
import Foundation
import KscopeCore

/// `--json`, shared by every command.
struct OutputOptions: ParsableArguments {
  @Flag(name: .long, help: "Print the result as one JSON object.")
  var json = false
}

/// Prints a JSON value (dictionaries, arrays, strings, integers, booleans) with sorted keys.
func printJSON(_ value: Any) throws {
  let data = try JSONSerialization.data(
    withJSONObject: value, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
  FileHandle.standardOutput.write(data)
  FileHandle.standardOutput.write(Data("\n".utf8))
}

/// A failure reported to the user as one line ("Error: ...") with a non-zero exit.
struct CommandFailure: Error, CustomStringConvertible {
  let description: String
  /// Control characters (from a file name, a guest) are escaped: the error stays one line.
  init(_ description: String) { self.description = TerminalSafe.oneLine(description) }
}
