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

/// A 64-bit address (or offset in the address space) as JSON and text show it: "0x" and hex,
/// so jq and JavaScript, whose numbers are doubles, read it back exactly.
func hexAddress(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// A signed quantity in hex ("-0x1000000" for phys_base below the link address).
func signedHex(_ v: Int64) -> String {
  v < 0 ? "-0x" + String(v.magnitude, radix: 16) : "0x" + String(v, radix: 16)
}

/// "1 run", "2 runs".
func plural(_ n: some BinaryInteger, _ word: String, _ plural: String? = nil) -> String {
  "\(n) \(n == 1 ? word : plural ?? word + "s")"
}

/// A file's device as "major:minor" (the guest kernel's dev_t: 12 bits of major above 20 bits
/// of minor, as `struct super_block.s_dev` holds it), the form `stat -c %Hd:%Ld` and
/// /proc/self/mountinfo print.
func deviceText(_ dev: UInt32) -> String { "\(dev >> 20):\(dev & 0xF_FFFF)" }

/// "254:0" back to the kernel's dev_t encoding; nil when it is not major:minor in range.
func parseDevice(_ text: String) -> UInt32? {
  let parts = text.split(separator: ":", omittingEmptySubsequences: false)
  guard parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]),
    major < 1 << 12, minor < 1 << 20
  else { return nil }
  return major << 20 | minor
}
