import CKscopeLinux
import Foundation
import KscopeOS
import KscopeClone
import KscopeCore
import KscopeSnapshot
import KscopeEngine
import KscopeVM

/// `kscope-bench engine [--pages N] [--runs N] [--source FILE]`
///
/// The clone engine's miss path against its floor, in the same run: host/bench/uffd-probe.c (a
/// minimal C fault loop doing exactly the engine's local path: pread the page from the source,
/// pwrite it into the tmpfs cache file, UFFDIO_WAKE) and the Swift engine serving a replay clone
/// thread, both touching the same N pages in the same seeded random order, each with the handler
/// on the faulting thread's CPU, on the other CPU, and unpinned. Also: a first touch of a page
/// already in the cache (the kernel's path, no handler), a miss over NBD on loopback (nbdkit), and
/// bulk prefetch over NBD. Medians of N runs.
enum EngineBench {
  static func run(_ args: [String]) throws {
    var pages = 20_000
    var runs = 5
    var sourcePath: String?
    var nbdOnly = false
    var nbdCPU: Int?
    var nbdThreads = 1
    var spin = 0
    var i = 0
    while i < args.count {
      let value = i + 1 < args.count ? args[i + 1] : ""
      switch args[i] {
      case "--pages": pages = max(1000, Int(value) ?? pages)
      case "--runs": runs = max(1, Int(value) ?? runs)
      case "--source": sourcePath = value
      case "--nbd-only": nbdOnly = true; i -= 1
      case "--nbd-cpu": nbdCPU = Int(value)
      case "--nbd-threads": nbdThreads = max(1, Int(value) ?? 1)
      case "--spin": spin = max(0, Int(value) ?? 0)
      default:
        throw BenchError(
          "unknown option \(args[i]) (options: --pages N --runs N --source FILE --nbd-only --nbd-cpu N --nbd-threads N --spin POLLS)")
      }
      i += 2
    }
    let dir = "/dev/shm/kscope-bench-engine-\(ProcessUsage.id)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let source = sourcePath ?? dir + "/source"
    if sourcePath == nil { try makeSource(source, pages: pages) }
    let probe = try buildProbe(dir)
    let order = shuffled(pages)
    let layout = try RAMLayout(segments: [GuestRAMRegion(guestPhysicalStart: 0, size: UInt64(pages) * 4096, fileOffset: 0)])
    let trace = order.map { Access(frame: $0, write: false) }
    print("engine benchmark: \(pages) misses per run in a seeded random order, median of \(runs) runs; source \(sourcePath ?? "random data in /dev/shm")")

    var rows: [(String, [Double], [Double])] = []
    for placement in nbdOnly ? [] : ["same", "other", "any"] {
      var cP50: [Double] = [], cP99: [Double] = [], sP50: [Double] = [], sP99: [Double] = []
      for _ in 0..<runs {
        let c = try runProbe(probe, source: source, cache: dir + "/probe-cache", pages: pages, placement: placement)
        cP50.append(c.p50)
        cP99.append(c.p99)
        let s = try engineRun(dir: dir, layout: layout, source: try LocalRAMSource(path: source), policy: OnDemandPolicy(), trace: trace, placement: placement)
        sP50.append(s.p50)
        sP99.append(s.p99)
      }
      rows.append(("C probe, handler \(label(placement))", cP50, cP99))
      rows.append(("kscope engine, handler \(label(placement))", sP50, sP99))
    }
    // A page already in the cache: the kernel maps it, no handler.
    var kP50: [Double] = [], kP99: [Double] = []
    for _ in 0..<(nbdOnly ? 0 : runs) {
      let k = try engineRun(dir: dir, layout: layout, source: try LocalRAMSource(path: source), policy: EagerPolicy(frameCount: UInt64(pages)), trace: trace, placement: "any")
      kP50.append(k.p50)
      kP99.append(k.p99)
    }
    rows.append(("first touch of a page already in the cache (kernel path, no handler)", kP50, kP99))
    // Over NBD on loopback (nbdkit, no link emulation), TCP and a unix socket, against the C
    // probe's libnbd loop on the same server.
    let server = try NBDServerProcess(file: source, cpu: nbdCPU, threads: nbdThreads)
    defer { server.stop() }
    let unixServer = try NBDServerProcess(file: source, cpu: nbdCPU, threads: nbdThreads, unixSocket: dir + "/nbd.sock")
    defer { unixServer.stop() }
    // Bulk prefetch wants the server on every CPU: its own servers, never pinned.
    let bulkServer = nbdCPU == nil ? server : try NBDServerProcess(file: source, threads: nbdThreads, port: 1)
    defer { bulkServer.stop() }
    let bulkUnixServer = nbdCPU == nil ? unixServer : try NBDServerProcess(file: source, threads: nbdThreads, unixSocket: dir + "/bulk.sock")
    defer { bulkUnixServer.stop() }
    var probeN50: [Double] = [], probeN99: [Double] = []
    var nP50: [Double] = [], nP99: [Double] = [], uP50: [Double] = [], uP99: [Double] = []
    // Bulk prefetch shapes, each measured in every run: (connections, request bytes, window).
    let shapes: [(Int, Int, Int)] = [(2, 64 << 10, 16), (4, 64 << 10, 16), (2, 256 << 10, 8), (4, 256 << 10, 8), (2, 1 << 20, 4)]
    var bulks = [[Double]](repeating: [], count: shapes.count)
    var unixBulk: [Double] = [], stripeBulk: [Double] = []
    for _ in 0..<runs {
      let c = try runProbe(probe, source: server.uri, cache: dir + "/probe-cache", pages: pages, placement: "same")
      probeN50.append(c.p50)
      probeN99.append(c.p99)
      let n = try engineRun(
        dir: dir, layout: layout, source: try NBDSource(uri: server.uri, spinPolls: spin), policy: OnDemandPolicy(), trace: trace,
        placement: "same", verifyAgainst: try LocalRAMSource(path: source))
      nP50.append(n.p50)
      nP99.append(n.p99)
      let u = try engineRun(
        dir: dir, layout: layout, source: try NBDSource(uri: unixServer.uri, spinPolls: spin), policy: OnDemandPolicy(), trace: trace,
        placement: "same", verifyAgainst: try LocalRAMSource(path: source))
      uP50.append(u.p50)
      uP99.append(u.p99)
      for (k, shape) in shapes.enumerated() {
        bulks[k].append(
          try bulkPrefetch(
            dir: dir, layout: layout, source: try NBDSource(uri: bulkServer.uri, requestBytes: shape.1, window: shape.2),
            pages: UInt64(pages), parallelism: shape.0))
      }
      stripeBulk.append(
        try bulkPrefetch(
          dir: dir, layout: layout, source: StripeAtATime(try NBDSource(uri: bulkServer.uri)), pages: UInt64(pages), parallelism: 4))
      unixBulk.append(
        try bulkPrefetch(
          dir: dir, layout: layout, source: try NBDSource(uri: bulkUnixServer.uri, requestBytes: shapes[0].1, window: shapes[0].2),
          pages: UInt64(pages), parallelism: shapes[0].0))
    }
    rows.append(("C probe over NBD (loopback TCP), handler same CPU", probeN50, probeN99))
    rows.append(("kscope engine over NBD (loopback TCP), handler same CPU", nP50, nP99))
    rows.append(("kscope engine over NBD (unix socket), handler same CPU", uP50, uP99))
    print("")
    print("| what | p50 µs | p99 µs |")
    print("|---|---|---|")
    for (name, p50, p99) in rows where !p50.isEmpty {
      print("| \(name) | \(String(format: "%.1f", median(p50))) | \(String(format: "%.1f", median(p99))) |")
    }
    print("(nbdkit --threads \(nbdThreads)\(nbdCPU.map { ", pinned to CPU \($0) for the misses, unpinned for bulk" } ?? ", unpinned"); engine spin \(spin) polls)")
    for (k, shape) in shapes.enumerated() {
      print(
        "| bulk prefetch over NBD (loopback TCP, \(shape.0) connections, \(shape.1 >> 10) KiB requests, \(shape.2) in flight each) | \(String(format: "%.2f", median(bulks[k]))) GB/s | |"
      )
    }
    print("| bulk prefetch over NBD (loopback TCP, 4 connections, a 2 MiB stripe read in 64 KiB requests, then written: before) | \(String(format: "%.2f", median(stripeBulk))) GB/s | |")
    print(
      "| bulk prefetch over NBD (unix socket, \(shapes[0].0) connections, \(shapes[0].1 >> 10) KiB requests, \(shapes[0].2) in flight each) | \(String(format: "%.2f", median(unixBulk))) GB/s | |"
    )
  }

  static func label(_ p: String) -> String {
    switch p {
    case "same": "on the faulting CPU"
    case "other": "on the other CPU"
    default: "unpinned"
    }
  }

  static func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : s[s.count / 2]
  }

  static func shuffled(_ n: Int) -> [UInt64] {
    var order = (0..<UInt64(n)).map { $0 }
    var g = SplitMix64(seed: 7)
    var i = n - 1
    while i > 0 {
      let j = Int(g.next() % UInt64(i + 1))
      order.swapAt(i, j)
      i -= 1
    }
    return order
  }

  static func makeSource(_ path: String, pages: Int) throws {
    var g = SplitMix64(seed: 1)
    var bytes = [UInt8](repeating: 0, count: pages * 4096)
    bytes.withUnsafeMutableBytes { b in
      for i in stride(from: 0, to: b.count, by: 8) { b.storeBytes(of: g.next(), toByteOffset: i, as: UInt64.self) }
    }
    try Data(bytes).write(to: URL(fileURLWithPath: path))
  }

  /// Builds host/bench/uffd-probe.c (found from the working directory or beside the binary).
  static func buildProbe(_ dir: String) throws -> String {
    let candidates = [
      FileManager.default.currentDirectoryPath + "/host/bench/uffd-probe.c",
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("../../../host/bench/uffd-probe.c").standardized.path,
    ]
    guard let c = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
      throw BenchError("host/bench/uffd-probe.c not found: run from the repository")
    }
    let out = dir + "/uffd-probe"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/gcc")
    p.arguments = ["-O2", "-pthread", "-o", out, c, "-lnbd"]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw BenchError("building \(c) failed") }
    return out
  }

  static func runProbe(_ probe: String, source: String, cache: String, pages: Int, placement: String) throws -> (p50: Double, p99: Double) {
    guard let j = try jsonObjectOfCommand(probe, [source, cache, String(pages), placement]),
      let p50 = j["p50_ns"] as? Double ?? (j["p50_ns"] as? Int).map(Double.init),
      let p99 = j["p99_ns"] as? Double ?? (j["p99_ns"] as? Int).map(Double.init)
    else { throw BenchError("the C probe failed") }
    return (p50 / 1000, p99 / 1000)
  }

  /// One replay clone thread (pinned to CPU 0 unless `any`) served by an in-process engine
  /// (handler on CPU 0, CPU 1, or unpinned); latencies of the clone's first touches, µs.
  static func engineRun(
    dir: String, layout: RAMLayout, source: any PageSource, policy: any ClonePolicy, trace: [Access], placement: String,
    verifyAgainst: (any PageSource)? = nil
  ) throws -> (p50: Double, p99: Double) {
    let cache = try HostCache(path: dir + "/cache", layout: layout, source: source, frameCount: layout.fileSize / 4096, holes: [])
    defer { cache.remove() }
    let engine = try Engine(cache: cache, policy: policy, layout: layout, socketPath: dir + "/sock")
    engine.handlerCPU = placement == "same" ? 0 : placement == "other" ? 1 : nil
    _ = try engine.prepare()
    engine.start()
    _ = kscope_pin_cpu(placement == "any" ? -1 : 0)
    defer { _ = kscope_pin_cpu(-1) }
    let report = try ReplayWorker.run(
      cachePath: cache.path, layout: layout, holes: [], trace: trace, snapshot: verifyAgainst ?? source, socketPath: dir + "/sock")
    _ = engine.stop()
    if let e = engine.errors.first { throw BenchError(e) }
    guard report.mismatches == 0 else { throw BenchError("\(report.mismatches) pages differ from the source") }
    var r = LatencyRecorder()
    for ns in report.firstTouchNanoseconds { r.record(nanoseconds: ns) }
    return (r.summary.p50, r.summary.p99)
  }

  /// GB/s of fetching every page into a fresh cache file (the engine's prefetch path).
  static func bulkPrefetch(
    dir: String, layout: RAMLayout, source: any PageSource, pages: UInt64, parallelism: Int = 4, stripeFrames: UInt64 = 512
  ) throws -> Double {
    let cache = try HostCache(path: dir + "/bulk", layout: layout, source: source, frameCount: pages, holes: [])
    defer { cache.remove() }
    // Connections opened before the clock starts: the figure is the transfer's.
    if let nbd = source as? NBDSource { try nbd.openConnections(parallelism) }
    if let s = source as? StripeAtATime { try s.base.openConnections(parallelism) }
    let t0 = kscope_now_ns()
    try cache.ensureInParallel([FrameRange(start: 0, count: pages)], parallelism: parallelism, stripeFrames: stripeFrames)
    let seconds = Double(kscope_now_ns() - t0) / 1e9
    return Double(pages * 4096) / seconds / 1e9
  }
}

/// nbdkit on a free loopback port (or a unix socket), for the NBD rows.
final class NBDServerProcess {
  let process = Process()
  let uri: String
  /// `cpu`: run nbdkit on that CPU only (taskset), e.g. the engine handler's. `threads`: nbdkit's
  /// threads per connection (1: the thread that reads a request answers it, no hand-off).
  init(file: String, cpu: Int? = nil, threads: Int = 1, unixSocket: String? = nil, port offset: Int = 0) throws {
    let port = 30000 + Int(ProcessUsage.id % 10000) * 2 + offset
    let listen: [String]
    if let unixSocket {
      uri = "nbd+unix:///?socket=\(unixSocket)"
      listen = ["-U", unixSocket]
    } else {
      uri = "nbd://127.0.0.1:\(port)/"
      listen = ["-i", "127.0.0.1", "-p", String(port)]
    }
    process.executableURL = URL(fileURLWithPath: ["/usr/sbin/nbdkit", "/usr/bin/nbdkit"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "nbdkit")
    let nbdkit = process.executableURL!.path
    if let cpu {
      process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
      process.arguments = ["-c", String(cpu), nbdkit]
    } else {
      process.arguments = []
    }
    process.arguments! += ["--foreground", "--readonly", "--exit-with-parent", "--threads", String(threads)] + listen + ["file", "file=" + file]
    try process.run()
    for _ in 0..<100 {
      if (try? NBDSource(uri: uri, timeoutSeconds: 0.2)) != nil { return }
      Thread.sleep(forTimeInterval: 0.05)
    }
    stop()
    throw BenchError("nbdkit did not come up on \(uri)")
  }
  func stop() {
    if process.isRunning {
      process.terminate()
      process.waitUntilExit()
    }
  }
}

/// A source whose bulk copy goes through the caller's buffer: a whole stripe read, then written
/// (the engine's bulk path before kscope_nbd_copy), for comparison.
struct StripeAtATime: PageSource {
  let base: NBDSource
  init(_ base: NBDSource) { self.base = base }
  func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(EngineError) {
    try base.read(into: buffer, at: offset)
  }
  var description: String { base.description }
}

