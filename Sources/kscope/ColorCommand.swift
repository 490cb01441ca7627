import ArgumentParser
import Foundation
import KscopeAnalyzer
import KscopeColoring
import KscopeCore
import KscopeMaps
import KscopeLayout
import KscopeOS
import Logging

struct ColorCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "color",
    abstract: "Color every page frame of a machine's memory and write a color map.",
    discussion: """
      Given a snapshot or a guest RAM file, the host analyzer colors it from outside: it finds \
      the kernel (vmcoreinfo), walks struct page through vmemmap and every process's page \
      tables, using the kernel layout given with --layout (a file from 'kscope layout \
      extract') or --vmlinux (extracted on the fly), or for a snapshot its kernel's cached \
      layout.

      Without a RAM file, the colors come from a kernel's page flags (--kpageflags, default \
      /proc/kpageflags: this machine's own memory, as root); kpagecount and iomem beside the \
      flags file are used when readable. A copy of a guest's /proc/kpageflags works the same.

      Examples:
        kscope color guest.ram --layout 6.1.json -o guest.kcm
        kscope color -o host.kcm
        kscope color --kpageflags guest/kpageflags -o guest.kcm --json
      """)

  @Argument(help: "A snapshot directory (kscope vm snapshot) or a guest RAM file to color from outside.")
  var source: String?

  @Option(help: "The guest kernel's layout (from 'kscope layout extract').")
  var layout: String?

  @Option(help: "The guest kernel's vmlinux with debug info (its layout is extracted).")
  var vmlinux: String?

  @Flag(help: "Read the layout from the guest kernel's own BTF and kallsyms even when debug info is cached.")
  var btf = false

  @Flag(help: "Download the guest kernel's debug package when no debug info is cached (default: use its BTF).")
  var fetchDebug = false

  @Flag(help: "Also color frames whose content is all zeros 'zero' (reads every frame).")
  var zeroScan = false

  @Flag(help: "Skip the walk of process page tables (no user-code, mapped or executable flags).")
  var noProcesses = false

  @Flag(help: "A raw RAM file is guest physical memory from 0 (default: QEMU q35's split around the PCI hole).")
  var flat = false

  @Option(help: "The guest agent's hint region (default: the snapshot's 'hints' file).")
  var hints: String?

  @Flag(help: "Ignore the guest agent's hints: host introspection only.")
  var noHints = false

  @Flag(help: "Skip the content digest of the guest RAM (it reads every non-zero block).")
  var noDigest = false

  @Option(help: "A kpageflags file: 8 bytes of page flags per frame.")
  var kpageflags = "/proc/kpageflags"

  @Option(help: "A kpagecount file (default: 'kpagecount' beside --kpageflags, if readable).")
  var kpagecount: String?

  @Option(help: "The kernel's resource map (default: 'iomem' beside --kpageflags, if readable).")
  var iomem: String?

  @Option(name: .shortAndLong, help: "Where to write the color map (written atomically).")
  var output: String

  @OptionGroup var out: OutputOptions

  func validate() throws {
    if source == nil && (layout != nil || vmlinux != nil || zeroScan || noProcesses || flat || hints != nil || noHints || noDigest) {
      throw ValidationError("--layout, --vmlinux, --zero-scan, --no-processes, --flat and the hint options need a snapshot or RAM file")
    }
    if layout != nil && vmlinux != nil { throw ValidationError("use --layout or --vmlinux, not both") }
    if btf && (layout != nil || vmlinux != nil || source == nil) {
      throw ValidationError("--btf reads the layout from a snapshot or RAM file: not with --layout or --vmlinux")
    }
  }

  func run() throws {
    if let source {
      try colorGuest(source)
      return
    }
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

extension ColorCommand {
  /// Host introspection of a snapshot or guest RAM file (`Coloring.color`).
  func colorGuest(_ source: String) throws {
    let started = Date()
    let input: ColoringInput
    let result: ColoringResult
    do {
      input = try ColoringInput.open(source, flat: flat)
      result = try Coloring.color(
        input,
        layoutProvider: KernelLayouts(
          layoutFile: layout, vmlinux: vmlinux, btfOnly: btf, fetchDebug: fetchDebug,
          hints: noHints ? .ignored : hints.map { .file($0) } ?? .fromSnapshot),
        options: ColoringOptions(
          zeroScan: zeroScan, walkProcesses: !noProcesses,
          hints: noHints ? .ignored : hints.map { .file($0) } ?? .fromSnapshot, digest: !noDigest,
          created: Int64(started.timeIntervalSince1970)),
        logger: Logger(label: "kscope.color"))
    } catch let e as ColoringError {
      throw CommandFailure(e.description)
    }
    let ram = input.ramPath
    let analysis = result.analysis
    let hintNote = result.hintNote
    let map = result.map
    let bytes = try ColorMapFile.write(map, to: output)
    let seconds = Date().timeIntervalSince(started)
    let loc = analysis.location
    if out.json {
      try printJSON([
        "output": output, "bytes": bytes, "frames": map.frameCount, "page_size": map.header.pageSize,
        "colors": Describe.colorCounts(map), "sources": map.header.sources.names, "seconds": seconds,
        "kernel": ["release": map.header.kernelRelease ?? "", "build_id": map.header.kernelBuildID ?? ""],
        "kaslr_offset": hexAddress(loc.slide), "phys_base": signedHex(Int64(bitPattern: loc.physBase)),
        "page_offset_base": hexAddress(loc.pageOffsetBase), "vmemmap_base": hexAddress(loc.vmemmapBase),
        "five_level_paging": loc.fiveLevel,
        "anomalies": analysis.anomalies, "processes": analysis.processes.count,
        "phases": Dictionary(analysis.phases.map { ($0.0, $0.1) }, uniquingKeysWith: +),
        "extents": map.extents.count, "layout": result.layoutOrigin,
        "hints": hintsJSON(analysis.hints, note: hintNote),
      ])
      return
    }
    print(
      "colored \(map.frameCount) frames (\(Describe.mib(map.frameCount, pageSize: map.header.pageSize)) MiB)"
        + " of \(ram) in \(Describe.formatFixed(seconds, digits: 3)) s -> \(output) (\(bytes) bytes)")
    print(
      "kernel \(Describe.safe(map.header.kernelRelease ?? "?")) build \(map.header.kernelBuildID ?? "?"):"
        + " KASLR offset \(hexAddress(loc.slide)), phys_base \(signedHex(Int64(bitPattern: loc.physBase))),"
        + " \(loc.fiveLevel ? 5 : 4)-level paging")
    print(
      "sources: \(map.header.sources.names.joined(separator: ", ")); \(analysis.sectionsWalked) memory sections,"
        + " \(analysis.processes.count) processes, \(map.extents.count) page-cache extents")
    print("layout: \(Describe.safe(result.layoutOrigin))")
    print("phases: " + analysis.phases.map { "\($0.0) \(Describe.formatFixed($0.1 * 1000, digits: 1)) ms" }.joined(separator: ", "))
    if let note = hintNote { print(note) }
    if let h = analysis.hints {
      if let why = h.rejected {
        print("hints set aside: \(why)")
      } else {
        let pct = h.compared == 0 ? 100 : Double(h.agreed) * 100 / Double(h.compared)
        print(
          "hints (generation \(h.generation)): agree on \(h.agreed) of \(h.compared) frames"
            + " (\(Describe.formatFixed(pct, digits: 2))%), \(h.decidedByHints) frames decided by hints,"
            + " \(h.namedExtents) page-cache extents named"
            + (h.disagreements.isEmpty ? "" : "; disagreements (hint->host): "
              + h.disagreements.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
      }
    }
    if !analysis.anomalies.isEmpty {
      print("anomalies: " + analysis.anomalies.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
    }
    print("")
    for line in Describe.colorTable(map) { print(line) }
  }

  func hintsJSON(_ h: HintMergeReport?, note: String?) -> [String: Any] {
    var d: [String: Any] = [:]
    if let note { d["note"] = note }
    guard let h else { d["used"] = false; return d }
    d["used"] = h.rejected == nil
    if let why = h.rejected { d["rejected"] = why }
    d["generation"] = h.generation
    d["compared_frames"] = h.compared
    d["agreeing_frames"] = h.agreed
    d["disagreements"] = h.disagreements
    d["decided_by_hints"] = h.decidedByHints
    d["named_extents"] = h.namedExtents
    return d
  }
}
