import Foundation
import KscopeOS
import KscopeClone
import KscopeCore
import KscopeMaps
import KscopeVM

/// `kscope-bench clones-memory --snapshot DIR --map MAP [--clones 8] [--touch 0.30] [--write 0.05]`
///
/// Host memory of K replay clones of one snapshot (`kscope clone replay`, the release binary
/// beside this one), each touching the same fraction of the parent's non-free frames (a seeded
/// random choice) and writing a smaller fraction, against the bound the engine's design gives:
/// the parent's non-free pages plus K times the written pages (the cache file holds at most the
/// non-free pages, shared; each clone's private pages are its writes).
enum ClonesMemoryBench {
  static func run(_ args: [String]) throws {
    var snapshot: String?
    var mapPath: String?
    var clones = 8
    var touch = 0.30
    var write = 0.05
    var policy = "kaleidoscope"
    var i = 0
    while i < args.count {
      let value = i + 1 < args.count ? args[i + 1] : ""
      switch args[i] {
      case "--snapshot": snapshot = value
      case "--map": mapPath = value
      case "--clones": clones = Int(value) ?? clones
      case "--touch": touch = Double(value) ?? touch
      case "--write": write = Double(value) ?? write
      case "--policy": policy = value
      default: throw BenchError("unknown option \(args[i]) (--snapshot DIR --map MAP --clones K --touch F --write F --policy P)")
      }
      i += 2
    }
    guard let snapshot, let mapPath else { throw BenchError("clones-memory needs --snapshot and --map") }
    guard let kscope = ColorMapBench.kscopeBinary() else { throw BenchError("no kscope beside kscope-bench: swift build -c release") }
    let map = try ColorMapFile.open(mapPath)
    // The parent's non-free frames, and a seeded choice of them to touch and to write.
    let used = (0..<map.frameCount).filter { f in
      let c = map.entry(at: f)?.color ?? .unknown
      return c != .free && c != .zero
    }
    var g = SplitMix64(seed: 11)
    var chosen = used
    for k in stride(from: chosen.count - 1, to: 0, by: -1) { chosen.swapAt(k, Int(g.next() % UInt64(k + 1))) }
    let touched = Array(chosen.prefix(Int(Double(used.count) * touch)))
    let writes = Int(Double(used.count) * write)
    let trace = touched.enumerated().map { Access(frame: $0.element, write: $0.offset < writes) }
    let tracePath = "/dev/shm/kscope-bench-clones-\(ProcessUsage.id).trace"
    defer { try? Files.remove(tracePath) }
    try Trace.text(trace, comment: "clones-memory bench").write(toFile: tracePath, atomically: true, encoding: .utf8)

    let replay = ["clone", "replay", "--snapshot", snapshot, "--map", mapPath, "--trace", tracePath,
      "--policy", policy, "--clones", String(clones), "--json"]
    guard let j = try jsonObjectOfCommand(kscope, replay),
      let host = j["host"] as? [String: Any], let resident = host["cache_resident_pages"] as? Int,
      let priv = host["private_pages"] as? Int, let verified = j["verified_pages"] as? Int
    else { throw BenchError("kscope clone replay failed") }
    let bound = used.count + clones * writes
    let total = resident + priv
    let mib = { (pages: Int) in String(format: "%.1f MiB", Double(pages) / 256) }
    print("clones-memory: \(clones) replay clones (\(policy)) of \(snapshot), each touching \(touched.count) of the parent's \(used.count) non-free frames (\(Int(touch * 100))%) and writing \(writes) (\(Int(write * 100))%); \(verified) pages verified")
    print("| what | pages | MiB |")
    print("|---|---|---|")
    print("| host cache file (shared by all clones) | \(resident) | \(mib(resident)) |")
    print("| clones' private pages (all \(clones)) | \(priv) | \(mib(priv)) |")
    print("| host memory in all | \(total) | \(mib(total)) |")
    print("| bound: parent's non-free pages + \(clones) x written pages | \(bound) | \(mib(bound)) |")
    print("| one more clone adds | \(priv / max(1, clones)) | \(mib(priv / max(1, clones))) |")
    print(String(format: "host memory / bound = %.3f", Double(total) / Double(bound)))
  }
}
