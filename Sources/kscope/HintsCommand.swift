import ArgumentParser
import Foundation
import KscopeCore
import KscopeHints

/// `kscope hints`: the guest agent's hint region, seen from the host.
struct HintsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hints", abstract: "Read the hints a guest agent published.",
    subcommands: [HintsReadCommand.self])
}

struct HintsReadCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "read", abstract: "Validate a hint region and print what it says.",
    discussion: """
      PATH is a raw region (a VM's ivshmem backing file, e.g. its state directory's `hints`, or \
      a file written by `kscope-agent --out`), or a snapshot directory whose manifest.json names \
      the region ("hints"). The region is read as the agent may be rewriting it: generation, \
      copy, generation again. Malformed, truncated, oversized, inconsistent or stale regions are \
      refused with one line saying why.
      """)

  @Argument(help: "A hint region file or a snapshot directory.")
  var path: String

  @OptionGroup var output: OutputOptions

  func run() throws {
    let file = try HintsFiles.open(path)
    let hints: HintSet
    var attempts = 0
    do { hints = try HintRegionFile.read(file, attempts: &attempts) } catch {
      throw CommandFailure("\(file.path): \(error)")
    }
    if attempts > 1 {
      // Said on standard error so that the report itself is the same either way.
      logStderr("note: the agent was publishing: read \(attempts) times, the last from one copy")
    }
    if output.json {
      var out = JSONStream.standardOutput()
      try HintsReport.writeJSON(hints, to: &out)
    } else {
      print(HintsReport.text(hints, path: file.path), terminator: "")
    }
  }
}
