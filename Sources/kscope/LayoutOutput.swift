import Foundation
import KscopeDebugInfo
import KscopeLayout
import KscopeOS

// Shared by the layout subcommands: errors to one line, output to a file or the terminal.

/// Runs a library call, turning its errors into one-line command failures.
func layoutCall<T>(_ body: () throws(DebugInfoError) -> T) throws -> T {
  do {
    return try body()
  } catch {
    throw CommandFailure(error.description)
  }
}

func parseTypeList(_ text: String?) -> [String] {
  (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
    !$0.isEmpty
  }
}

/// Writes the layout to `output` (atomically) and prints a summary, or prints the ISF text.
/// A types-only layout (raw BTF, `--types-only`) is checked for every type, member and enum but
/// has no symbols; `color --layout` refuses it, as it lacks them.
func emitLayout(_ layout: KernelLayout, output: String?, json: Bool, typesOnly: Bool = false) throws {
  // The one validator: nothing is written or printed that `color --layout` would refuse.
  var request = LayoutRequest.default
  if typesOnly {
    request.symbols = []
    request.optionalSymbols = []
  }
  do { try layout.validate(request: request) } catch {
    throw CommandFailure("refusing to write an unusable layout: \(error)")
  }
  let text = layout.isfBytes()
  guard let output else {
    FileHandle.standardOutput.write(Data(text))
    return
  }
  do { try Files.writeAtomically(text, to: output) } catch {
    throw CommandFailure("\(output): cannot write: \(error.reason)")
  }
  if json {
    try printJSON(
      LayoutReport.summaryJSON(layout, file: output, bytes: text.count).foundationValue)
  } else {
    print(
      "wrote \(output) (\(text.count) bytes): Linux \(layout.release ?? "?"), build id \(layout.buildID ?? "none"), \(layout.userTypes.count) structs, \(layout.enums.count) enums, \(layout.symbols.count) symbols"
    )
  }
}

extension JSONValue {
  /// The value as Foundation objects, for `printJSON`.
  var foundationValue: Any {
    switch self {
    case .null: return NSNull()
    case .bool(let b): return b
    case .unsigned(let u): return NSNumber(value: u)
    case .signed(let s): return NSNumber(value: s)
    case .double(let d): return d
    case .string(let s): return s
    case .array(let items): return items.map(\.foundationValue)
    case .object(let members): return members.mapValues(\.foundationValue)
    }
  }
}
