import ArgumentParser
import Foundation
import KscopeClone
import KscopeCore
import KscopeMaps
import KscopeOS
import KscopeVM

/// `kscope clone ...`: clone policies over color maps and access traces.
struct CloneCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clone",
    abstract: "Compare clone fetch policies on access traces (simulated, or on real userfaultfd).",
    discussion: """
      A trace is a text file, one access per line: <frame number> <r|w> [time µs]; '#' starts a \
      comment. Policies: \(PolicyName.all.joined(separator: ", ")).

        kscope clone simulate --map web1.kcm --trace t.txt --policy kaleidoscope
        kscope clone replay --snapshot /dev/shm/snap1 --trace t.txt --policy on-demand --clones 2
      """,
    subcommands: [CloneSimulate.self, CloneReplay.self, CloneTrace.self, CloneEngineCommand.self, CloneWorker.self])
}

/// The access trace of `simulate` and `replay`.
struct TraceOption: ParsableArguments {
  @Option(help: "The access trace.") var trace: String
}

/// The fetch policy (shared by `simulate`, `replay`, `clone engine` and `vm clone --lazy`).
struct PolicyOptions: ParsableArguments {
  @Option(help: "Fetch policy: \(PolicyName.all.joined(separator: ", ")).") var policy: String
  @Option(help: "A recorded working set: a trace whose first-touch order is fetched first.")
  var workingSet: String?
  @Flag(help: "Fetch free frames too (for guests that poison or zero pages on free).")
  var fetchFree = false

  func readTrace(_ path: String, frameCount: UInt64) throws -> [Access] {
    let bytes = try Files.read(path, limit: 1 << 30)
    do {
      return try Trace.parse(Substring(decoding: bytes, as: UTF8.self), frameCount: frameCount)
    } catch { throw CommandFailure("\(path): \(error.description)") }
  }

  func makePolicy(map: ColorMap) throws -> any ClonePolicy {
    var set: [UInt64]?
    if let workingSet { set = try readTrace(workingSet, frameCount: map.frameCount).map(\.frame) }
    do {
      return try PolicyName.make(policy, map: map, workingSet: set, freeIsHole: !fetchFree)
    } catch { throw CommandFailure(error.description) }
  }
}

/// The JSON object of a run's metrics (keys shared by simulate and replay).
func metricsJSON(_ m: CloneMetrics) -> [String: Any] {
  [
    "policy": m.policy, "accesses": m.accesses, "touched_pages": m.touchedPages,
    "demand_faults": m.demandFaults, "pages_fetched": m.pagesFetched,
    "pages_prefetched": m.pagesPrefetched, "waste": m.waste, "holes": m.holes,
    "holes_touched": m.holesTouched, "footprint_pages": m.footprintPages,
    "bytes_moved": m.bytesMoved, "resume_pages": m.resumePages,
    "fault_latency_us": [
      "count": m.faultLatency.count, "p50": m.faultLatency.p50, "p99": m.faultLatency.p99,
      "max": m.faultLatency.max,
    ],
    "time_to_misses_us": m.timeToMisses.map { ["misses": $0.misses, "us": $0.micros] },
  ]
}

func metricsText(_ m: CloneMetrics) -> String {
  func f(_ x: Double) -> String { String(format: "%.1f", x) }
  return """
    policy            \(m.policy)
    accesses          \(m.accesses) (\(m.touchedPages) distinct pages)
    demand faults     \(m.demandFaults)  latency µs p50 \(f(m.faultLatency.p50)) p99 \(f(m.faultLatency.p99)) max \(f(m.faultLatency.max))
    pages fetched     \(m.pagesFetched) (\(m.pagesPrefetched) ahead of a miss, \(m.resumePages) before resume)
    waste             \(m.waste) pages fetched and never touched
    holes             \(m.holes) frames never fetched (\(m.holesTouched) touched, zero-filled)
    footprint         \(m.footprintPages) pages
    bytes moved       \(m.bytesMoved)
    """
}

struct CloneSimulate: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "simulate",
    abstract: "Run a policy over a trace without syscalls (a model of the engine and the link).",
    discussion: """
      The model: a miss costs the userfaultfd round trip (9 µs, measured here) plus one request \
      on the link (its round trip and the batch's bytes); background fetch runs in the trace's \
      idle time and holds off after misses as the policy says. Links: local (a tmpfs snapshot, \
      1 µs, 1.7 GB/s) or 1gbit (an emulated 1 Gbit/s link with 0.2 ms round trips).
      """)

  @Option(help: "The parent's color map.") var map: String
  @OptionGroup var policy: PolicyOptions
  @OptionGroup var traceOption: TraceOption
  @Option(help: "Link model: local or 1gbit.") var link = "local"
  @OptionGroup var out: OutputOptions

  func run() throws {
    guard let model = LinkModel.named(link) else {
      throw CommandFailure("unknown link '\(link)' (expected local or 1gbit)")
    }
    let colorMap = try ColorMapFile.open(map)
    let trace = try policy.readTrace(traceOption.trace, frameCount: colorMap.frameCount)
    let p = try policy.makePolicy(map: colorMap)
    let m = Simulator(link: model).run(policy: p, frameCount: colorMap.frameCount, trace: trace)
    if out.json {
      var j = metricsJSON(m)
      j["link"] = model.name
      j["simulated"] = true
      try printJSON(j)
    } else {
      print("simulated, link \(model.name)")
      print(metricsText(m))
    }
  }
}

/// `kscope clone trace`: a real access trace from two snapshots of one running parent.
struct CloneTrace: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "trace",
    abstract: "Record a trace from two snapshots of one parent: the frames its workload wrote between them.",
    discussion: """
      Compares the two snapshots' RAM page by page and writes '<frame> w' for every frame whose \
      content changed, in frame order (two snapshots tell what changed, not when or in what order).
      """)

  @Option(help: "The earlier snapshot.") var from: String
  @Option(help: "The later snapshot of the same parent.") var to: String
  @Option(name: .shortAndLong, help: "The trace file to write.") var output: String
  @OptionGroup var out: OutputOptions

  func run() throws {
    let a = try SnapshotRAM(from)
    let b = try SnapshotRAM(to)
    guard a.layout == b.layout, a.file.size == b.file.size else {
      throw CommandFailure("\(from) and \(to) have different RAM layouts: not snapshots of one parent")
    }
    var accesses: [Access] = []
    let page = Int(a.layout.pageSize)
    for s in a.layout.segments {
      let first = s.guestPhysicalStart / a.layout.pageSize
      for k in 0..<Int(s.size / a.layout.pageSize) {
        let at = Int(s.fileOffset) + k * page
        guard let x = a.file.bytes(at: at, count: page), let y = b.file.bytes(at: at, count: page) else { continue }
        if !Memory.equal(x.baseAddress!, y.baseAddress!, count: page) {
          accesses.append(Access(frame: first + UInt64(k), write: true))
        }
      }
    }
    let text = Trace.text(accesses, comment: "frames written between \(from) and \(to) (kscope clone trace)")
    try Files.writeAtomically(Array(text.utf8), to: output)
    if out.json {
      try printJSON(["trace": output, "accesses": accesses.count])
    } else {
      print("\(accesses.count) frames changed; trace written to \(output)")
    }
  }
}

/// A snapshot's RAM file, mapped, with its layout.
struct SnapshotRAM {
  let file: MappedFile
  let layout: RAMLayout
  init(_ dir: String) throws {
    let snapshot = try openSnapshot(dir)
    layout = try ramLayout(of: snapshot)
    file = try MappedFile(descriptor: snapshot.ram.fd, path: snapshot.ram.path)
    guard UInt64(file.size) >= layout.fileSize else {
      throw CommandFailure("\(dir): RAM file is shorter than its layout")
    }
  }
}

/// Opens a snapshot directory for a command (confined, validated: `Snapshot.open`); one line
/// on failure.
func openSnapshot(_ path: String) throws -> Snapshot {
  do { return try Snapshot.open(path) } catch {
    throw CommandFailure("\(TerminalSafe.oneLine(path)): not a usable snapshot: \(error)")
  }
}

/// The snapshot's RAM layout (its manifest's regions, checked again as the engine needs them).
func ramLayout(of snapshot: Snapshot) throws -> RAMLayout {
  do {
    return try RAMLayout(segments: snapshot.manifest.memoryLayout)
  } catch { throw CommandFailure("\(TerminalSafe.oneLine(snapshot.path)): \(error.description)") }
}
