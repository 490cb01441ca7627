import ArgumentParser
import Foundation
import KscopeAnalyzer
import KscopeClone
import KscopeCore
import KscopeEngine
import KscopeMaps
import KscopeOS
import KscopeVM

/// A snapshot as the replay sees it: its RAM file, layout, and the color map that drives it.
struct ReplayInputs {
  let snapshot: Snapshot
  let layout: RAMLayout
  let map: ColorMap
  let policy: any ClonePolicy
  let trace: [Access]

  init(snapshot path: String, mapPath: String?, options: PolicyOptions, tracePath: String?, checkDigest: Bool) throws {
    snapshot = try openSnapshot(path)
    let manifest = snapshot.manifest
    layout = try ramLayout(of: snapshot)
    let frames = layout.frameCount
    if let mapPath {
      let m = try ColorMapFile.open(mapPath)
      guard m.frameCount == frames else {
        throw CommandFailure("\(mapPath) covers \(m.frameCount) frames but the snapshot has \(frames): it belongs to another guest")
      }
      if let id = m.header.kernelBuildID, !id.isEmpty, id != manifest.kernel.buildID {
        throw CommandFailure("\(mapPath) was made for kernel build \(id), the snapshot runs \(manifest.kernel.buildID)")
      }
      if checkDigest, m.header.image.algorithm != .none {
        let digest = try RAMImage(file: MappedFile(descriptor: snapshot.ram.fd, path: snapshot.ram.path), regions: nil).contentDigest(algorithm: m.header.image.algorithm)
        guard digest == m.header.image else {
          throw CommandFailure("\(mapPath)'s image digest \(m.header.image.text) is not the snapshot's RAM (\(digest.text)): it belongs to another image")
        }
      }
      map = m
    } else {
      // Colour-blind policies need no colors: an all-unknown map of the right size.
      map = ColorMap(header: ColorMapHeader(), entries: [UInt16](repeating: 0, count: Int(frames)))
    }
    if mapPath == nil && options.policy.hasPrefix("kaleidoscope") {
      throw CommandFailure("policy \(options.policy) needs the parent's color map (--map)")
    }
    trace = try tracePath.map { try options.readTrace($0, frameCount: frames) } ?? []
    policy = try options.makePolicy(map: map)
  }
}

extension ReplayInputs {
  /// The snapshot's RAM as a page source, through the descriptor opened inside its directory.
  func ramSource() throws(EngineError) -> LocalRAMSource {
    try LocalRAMSource(descriptor: snapshot.ram.fd, path: snapshot.ram.path)
  }

  /// Where the engine fetches pages: `kscope serve` at `uri` (which must export exactly this
  /// snapshot's RAM size), or the local snapshot.
  func pageSource(from uri: String?) throws -> any PageSource {
    let local = try ramSource()
    guard let uri else { return local }
    let nbd = try NBDSource(uri: uri)
    guard nbd.size == local.size else {
      throw CommandFailure("\(uri) exports \(nbd.size) bytes but the snapshot's RAM has \(local.size): another image")
    }
    return nbd
  }
}

struct CloneReplay: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "replay",
    abstract: "Replay a trace in K clone processes served by the engine on real userfaultfd.",
    discussion: """
      The engine makes a host cache file (sparse, on tmpfs) laid out like the snapshot's RAM, \
      fetches the policy's resume set, and serves misses from the snapshot's RAM file. Each clone \
      maps the cache file privately, registers it with userfaultfd (large free runs stay \
      unregistered), hands the uffd to the engine, touches pages in trace order, and checks every \
      page it touches against the snapshot (zeros for a frame the map proves free): any mismatch \
      fails the command. Fault latency is measured in the clones, around each faulting access.
      """)

  @Option(help: "The snapshot directory (kscope vm snapshot).") var snapshot: String
  @Option(help: "The parent's color map (needed by the kaleidoscope policies).") var map: String?
  @OptionGroup var policy: PolicyOptions
  @OptionGroup var traceOption: TraceOption
  @Option(help: "Take pages from 'kscope serve' (nbd://HOST:PORT/) instead of the local RAM file.")
  var from: String?
  @Option(help: "Clone processes.") var clones = 1
  @Option(help: "Directory for the host cache file and the engine's socket.") var cacheDir = "/dev/shm"
  @Flag(help: "Skip checking the map's image digest against the snapshot's RAM.") var noDigestCheck = false
  @OptionGroup var out: OutputOptions

  func validate() throws {
    guard (1...64).contains(clones) else { throw ValidationError("--clones must be 1...64") }
  }

  func run() throws {
    let inputs = try ReplayInputs(snapshot: snapshot, mapPath: map, options: policy, tracePath: traceOption.trace, checkDigest: !noDigestCheck)
    let tag = "kscope-engine-\(ProcessUsage.id)"
    let cachePath = cacheDir + "/" + tag + ".ram"
    let socketPath = cacheDir + "/" + tag + ".sock"
    let m: CloneMetrics
    var verified: UInt64 = 0
    var privatePages: UInt64 = 0
    var resident: UInt64 = 0
    var resumeSeconds = 0.0
    do {
      let source = try inputs.pageSource(from: from)
      let holes = inputs.policy.holes()
      let cache = try HostCache(
        path: cachePath, layout: inputs.layout, source: source, frameCount: inputs.map.frameCount, holes: holes)
      defer { cache.remove() }
      let engine = try Engine(cache: cache, policy: inputs.policy, layout: inputs.layout, socketPath: socketPath)
      let prepared = try engine.prepare()
      resumeSeconds = prepared.seconds
      engine.start()
      // The clones: this executable's hidden worker command, all at once.
      let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
      var args = ["clone", "worker", "--snapshot", snapshot, "--trace", traceOption.trace, "--policy", policy.policy,
        "--cache", cachePath, "--socket", socketPath]
      if let map { args += ["--map", map] }
      if let ws = policy.workingSet { args += ["--working-set", ws] }
      if policy.fetchFree { args.append("--fetch-free") }
      var workers: [(Process, Pipe, Pipe)] = []
      for _ in 0..<clones {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: me)
        p.arguments = args
        let o = Pipe()
        let e = Pipe()
        p.standardOutput = o
        p.standardError = e
        try p.run()
        workers.append((p, o, e))
      }
      var reports: [WorkerReport] = []
      var failures: [String] = []
      for (p, o, e) in workers {
        let data = o.fileHandleForReading.readDataToEndOfFile()
        let err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
          failures.append(String(decoding: err, as: UTF8.self).split(whereSeparator: \.isNewline).last.map(String.init) ?? "clone exited \(p.terminationStatus)")
          continue
        }
        do { reports.append(try JSONDecoder().decode(WorkerReport.self, from: data)) } catch {
          failures.append("a clone's report did not parse")
        }
      }
      let records = engine.stop()
      if let problem = engine.errors.first { throw CommandFailure("engine: \(problem)") }
      if let f = failures.first { throw CommandFailure("clone failed: \(f)") }
      let mismatches = reports.reduce(0) { $0 + $1.mismatches }
      if mismatches > 0 {
        let frame = reports.compactMap(\.firstMismatch).first ?? 0
        throw CommandFailure("\(mismatches) pages differ from the snapshot (first: frame \(frame))")
      }
      resident = cache.residentPages()
      m = Self.metrics(policy: inputs.policy, cache: cache, prepared: prepared.pages, records: records, reports: reports)
      verified = reports.reduce(0) { $0 + $1.verifiedPages }
      privatePages = reports.reduce(0) { $0 + $1.privatePages }
    } catch let e as EngineError {
      throw CommandFailure(e.description)
    }
    if out.json {
      var j = metricsJSON(m)
      j["verified_pages"] = verified
      j["clones"] = clones
      j["source"] = from ?? "local"
      j["resume_seconds"] = resumeSeconds
      j["host"] = ["cache_resident_pages": resident, "private_pages": privatePages]
      try printJSON(j)
    } else {
      print("replayed \(clones) clone(s) from \(from ?? "the local snapshot"); \(verified) pages verified byte for byte")
      print(metricsText(m))
      print("host memory       cache file \(resident) pages resident; clones' private pages \(privatePages)")
    }
  }

  /// The run's metrics from what the engine served and what the clones saw.
  static func metrics(
    policy: any ClonePolicy, cache: HostCache, prepared: UInt64, records: [Engine.ClientRecord],
    reports: [WorkerReport]
  ) -> CloneMetrics {
    var m = CloneMetrics(policy: policy.name)
    let frames = cache.holes.count
    var touched = Bitmap(count: frames)
    var latency = LatencyRecorder()
    for r in reports {
      m.accesses += r.accesses
      // Touched: what the clone itself accessed. Its page table (mappedFrames) also holds pages
      // the kernel mapped around a fault (fault-around), which it never touched.
      for f in r.firstTouchFrames { touched.insert(f) }
      // A clone's fault latency: its own timing of the accesses the engine served as misses.
      let faulted = Set(records.first { $0.pid == r.pid }?.faults.map(\.frame) ?? [])
      for (f, ns) in zip(r.firstTouchFrames, r.firstTouchNanoseconds) where faulted.contains(f) {
        latency.record(nanoseconds: ns)
      }
    }
    // Time to the 1st, 10th, 100th and 1000th miss served, in the first clone's own clock.
    if let r = reports.first {
      let faulted = Set(records.first { $0.pid == r.pid }?.faults.map(\.frame) ?? [])
      var n: UInt64 = 0
      for (f, done) in zip(r.firstTouchFrames, r.firstTouchDoneNanoseconds) where faulted.contains(f) {
        n += 1
        if [1, 10, 100, 1000].contains(n) { m.timeToMisses.append((n, Double(done) / 1000)) }
      }
    }
    let present = cache.presentBitmap
    m.demandFaults = records.reduce(0) { $0 + $1.faultCount }
    m.faultLatency = latency.summary
    m.pagesFetched = present.population
    let demandFrames = Set(records.flatMap { $0.faults.map(\.frame) })
    m.pagesPrefetched = m.pagesFetched - UInt64(demandFrames.count)
    m.touchedPages = touched.population
    m.waste = m.pagesFetched - present.intersectionCount(touched)
    m.holes = cache.holes.population
    m.holesTouched = cache.holes.intersectionCount(touched)
    m.footprintPages = m.pagesFetched + reports.reduce(0) { $0 + $1.privatePages }
    m.bytesMoved = m.pagesFetched * 4096
    m.resumePages = prepared
    return m
  }
}

/// The clone side of `clone replay` (run by it, one process per clone).
struct CloneWorker: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "worker", abstract: "One replay clone (started by 'kscope clone replay').",
    shouldDisplay: false)

  @Option var snapshot: String
  @Option var map: String?
  @OptionGroup var policy: PolicyOptions
  @OptionGroup var traceOption: TraceOption
  @Option var cache: String
  @Option var socket: String

  func run() throws {
    let inputs = try ReplayInputs(snapshot: snapshot, mapPath: map, options: policy, tracePath: traceOption.trace, checkDigest: false)
    do {
      let report = try ReplayWorker.run(
        cachePath: cache, layout: inputs.layout, holes: inputs.policy.holes(), trace: inputs.trace,
        snapshot: try inputs.ramSource(), socketPath: socket)
      FileHandle.standardOutput.write(try JSONEncoder().encode(report))
    } catch let e as EngineError { throw CommandFailure(e.description) }
  }
}
