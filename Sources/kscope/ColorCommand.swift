import ArgumentParser
import Foundation
import KscopeCore
import KscopeHost
import Logging

struct ColorCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "color",
    abstract: "Color every page frame of a machine's memory and write a color map.",
    discussion: """
      With --kpageflags (the default source is /proc/kpageflags, this machine's own memory, as
      root), the colors come from the kernel's page flags; kpagecount and iomem beside the
      flags file are used when readable. A copy of a guest's /proc/kpageflags works the same.

      Examples:
        kscope color -o host.kcm
        kscope color --kpageflags guest/kpageflags -o guest.kcm --json
      """)

  @Option(help: "A kpageflags file: 8 bytes of page flags per frame.")
  var kpageflags = "/proc/kpageflags"

  @Option(help: "A kpagecount file (default: 'kpagecount' beside --kpageflags, if readable).")
  var kpagecount: String?

  @Option(help: "The kernel's resource map (default: 'iomem' beside --kpageflags, if readable).")
  var iomem: String?

  @Option(name: .shortAndLong, help: "Where to write the color map (written atomically).")
  var output: String

  @OptionGroup var out: OutputOptions

  func run() throws {
    let logger = Logger(label: "kscope.color")
    let started = Date()
    let source = KernelPageFlagsSource(flagsPath: kpageflags, countsPath: kpagecount, iomemPath: iomem)
    let report = try source.produce(created: Int64(started.timeIntervalSince1970), logger: logger)
    let bytes = try ColorMapFile.write(report.map, to: output)
    let seconds = Date().timeIntervalSince(started)
    let map = report.map
    if out.json {
      try printJSON([
        "output": output, "bytes": bytes, "frames": map.frameCount,
        "page_size": map.header.pageSize, "colors": Describe.colorCounts(map),
        "sources": map.header.sources.names, "seconds": seconds, "notes": report.notes,
        "inputs": map.header.metadata.filter { $0.key.hasPrefix("source.") }.map(\.value),
      ])
      return
    }
    print(
      "colored \(map.frameCount) frames (\(Describe.mib(map.frameCount, pageSize: map.header.pageSize)) MiB)"
        + " from \(kpageflags) in \(Describe.formatFixed(seconds, digits: 3)) s"
        + " -> \(output) (\(bytes) bytes)")
    print("sources: \(map.header.sources.names.joined(separator: ", "))"
      + (report.usedCounts ? " (+ kpagecount)" : ""))
    for n in report.notes { print("note: \(n)") }
    print("")
    for line in Describe.colorTable(map) { print(line) }
  }
}
