import ArgumentParser
import Foundation
import Logging

@main
struct Kscope: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kscope",
    abstract: "VM state coloring and cloud micro-elasticity: color maps of guest memory.",
    discussion: """
      kscope classifies every page frame of a (guest) machine's physical memory by what it \
      is, writes the result as a color map, and answers questions about color maps. It also \
      boots, snapshots and clones parent VMs, reads guest kernel layouts, and reads the guest \
      agent's hints.

      Every command takes --json: one JSON object on stdout, addresses as "0x..." strings \
      (host/docs/json-output.md). Diagnostics and progress go to stderr; \
      KSCOPE_LOG=debug|info|notice|warning|error sets how many (default warning).
      """,
    subcommands: [
      ColorCommand.self, MapCommand.self, ColorsCommand.self, LayoutCommand.self,
      VMCommand.self, WorkloadCommand.self, HintsCommand.self, CloneCommand.self, ServeCommand.self,
      BenchCommand.self,
    ])

  static func main() {
    // swift-log writes to stdout by default, which would mix diagnostics into --json output.
    let level = ProcessInfo.processInfo.environment["KSCOPE_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
    main(nil)
  }
}
