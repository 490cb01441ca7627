import Foundation
import Glibc
import KscopeCore
import KscopeSnapshot
import Testing

@testable import KscopeClone
@testable import KscopeEngine

/// The engine on real userfaultfd, in one process: the clone thread faults, the engine's
/// handler thread serves. A 32 MiB "parent RAM" with random content everywhere, free frames
/// included (Linux does not zero freed pages), so a hole served where the map is wrong shows.
@Suite(.serialized) struct EngineTests {
  static let frames: UInt64 = 8192
  static let page = 4096

  /// 0..<64 kernel code, 64..<1088 free (1024 frames: left unregistered), 1088..<2048 page cache
  /// (one file, reversed), 2048..<2052 free (small: served with zero pages), 2052..<8192 user data.
  static func map() -> ColorMap {
    var colors = [Color](repeating: .userData, count: Int(frames))
    for i in 0..<64 { colors[i] = .kernelCode }
    for i in 64..<1088 { colors[i] = .free }
    for i in 1088..<2048 { colors[i] = .pageCache }
    for i in 2048..<2052 { colors[i] = .free }
    let extents = (1088..<2048).map { f in
      AttributeExtent(start: UInt64(f), count: 1, file: FileIdentity(device: 1, inode: 5, index: UInt64(2047 - f)))
    }
    return ColorMap(header: ColorMapHeader(), entries: colors.map { FrameEntry($0).rawValue }, extents: extents)
  }

  final class Fixture {
    let dir: String
    let ram: String
    let layout: RAMLayout
    init() throws {
      dir = "/dev/shm/kscope-engine-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      ram = dir + "/ram"
      var g = SystemRandomNumberGenerator()
      var bytes = [UInt8](repeating: 0, count: Int(EngineTests.frames) * EngineTests.page)
      bytes.withUnsafeMutableBytes { b in
        for i in stride(from: 0, to: b.count, by: 8) { b.storeBytes(of: g.next() | 1, toByteOffset: i, as: UInt64.self) }
      }
      try Data(bytes).write(to: URL(fileURLWithPath: ram))
      layout = try RAMLayout(segments: [GuestRAMRegion(guestPhysicalStart: 0, size: EngineTests.frames * 4096, fileOffset: 0)])
    }
    deinit { try? FileManager.default.removeItem(atPath: dir) }
  }

  /// Runs one clone over `trace` with `policy`; returns the engine's view and the clone's report.
  func replay(
    _ f: Fixture, policy: any ClonePolicy, holes: [FrameRange]? = nil, cloneHoles: [FrameRange]? = nil,
    trace: [Access]
  ) throws
    -> (cache: HostCache, records: [Engine.ClientRecord], report: WorkerReport, errors: [String])
  {
    let source = try LocalRAMSource(path: f.ram)
    let cache = try HostCache(
      path: f.dir + "/cache", layout: f.layout, source: source, frameCount: Self.frames, holes: holes ?? policy.holes())
    defer { cache.remove() }
    let engine = try Engine(cache: cache, policy: policy, layout: f.layout, socketPath: f.dir + "/sock")
    _ = try engine.prepare()
    engine.start()
    let report = try ReplayWorker.run(
      cachePath: cache.path, layout: f.layout, holes: cloneHoles ?? holes ?? policy.holes(), trace: trace, snapshot: source,
      socketPath: f.dir + "/sock")
    let records = engine.stop()
    return (cache, records, report, engine.errors)
  }

  static func trace() -> [Access] {
    var g = SplitMix64(seed: 7)
    return (0..<3000).map { k in Access(frame: g.next() % frames, write: k % 5 == 0) }
  }

  @Test func onDemandServesEveryPageByteForByte() throws {
    let f = try Fixture()
    let t = Self.trace()
    let r = try replay(f, policy: OnDemandPolicy(), trace: t)
    let distinct = Set(t.map(\.frame))
    #expect(r.errors.isEmpty)
    #expect(r.report.mismatches == 0)
    #expect(r.report.verifiedPages == UInt64(distinct.count))
    // Colour-blind: every first touch is a miss, one page each, nothing else fetched.
    let faults = r.records.flatMap { $0.faults.map(\.frame) }
    #expect(Set(faults) == distinct)
    #expect(r.cache.presentBitmap.population == UInt64(distinct.count))
    // The clone's page table maps exactly what it touched.
    #expect(Set(r.report.mappedFrames) == distinct)
  }

  @Test func kaleidoscopeNeverFetchesFreeFramesAndServesThemAsZeros() throws {
    let f = try Fixture()
    let t = Self.trace()
    let policy = KaleidoscopePolicy(map: Self.map(), freeIsHole: true)
    let r = try replay(f, policy: policy, trace: t)
    #expect(r.errors.isEmpty)
    #expect(r.report.mismatches == 0)
    #expect(r.report.verifiedPages == UInt64(Set(t.map(\.frame)).count))
    let present = r.cache.presentBitmap
    for free in Array(64..<1088) + Array(2048..<2052) { #expect(!present[UInt64(free)], "free frame \(free) was fetched") }
    // Kernel code was there before the clone ran: never a miss.
    let faults = Set(r.records.flatMap { $0.faults.map(\.frame) })
    #expect(faults.allSatisfy { $0 >= 64 })
    // Small free runs are zero-filled by the engine; large ones by the kernel, unregistered.
    let touchedSmallFree = Set(t.map(\.frame)).filter { (2048..<2052).contains($0) }.count
    #expect(r.records.reduce(0) { $0 + $1.zeroFilled } == UInt64(touchedSmallFree))
  }

  @Test func eagerFetchesEverythingBeforeResumeAndNeverFaults() throws {
    let f = try Fixture()
    let r = try replay(f, policy: EagerPolicy(frameCount: Self.frames), trace: Self.trace())
    #expect(r.report.mismatches == 0)
    #expect(r.records.allSatisfy { $0.faults.isEmpty })
    #expect(r.cache.presentBitmap.population == Self.frames)
  }

  @Test func anEngineServingZerosForDataIsCaughtByTheCheck() throws {
    // A broken engine that treats user-data frames as holes: the clone sees zeros where the
    // parent had data, and the clone's check (which knows these frames are not free) says so.
    let f = try Fixture()
    let wrong = [FrameRange(start: 3000, count: 8)]
    let trace = (3000..<3008).map { Access(frame: UInt64($0), write: false) }
    let r = try replay(f, policy: OnDemandPolicy(), holes: wrong, cloneHoles: [], trace: trace)
    #expect(r.report.mismatches == 8)
  }
}


/// nbdkit serving a file read-only on a free loopback port, stopped when the test ends.
final class NBDServer {
  let process = Process()
  let port: Int
  var uri: String { "nbd://127.0.0.1:\(port)/" }

  /// Servers of one test process take turns through its ports (suites run in parallel).
  nonisolated(unsafe) static var started = 0
  static let startLock = NSLock()

  init(file: String, delayMilliseconds: Int? = nil) throws {
    Self.startLock.lock()
    Self.started += 1
    port = 20000 + Int(getpid() % 10000) * 4 + Self.started % 4
    Self.startLock.unlock()
    let nbdkit = ["/usr/sbin/nbdkit", "/usr/bin/nbdkit"].first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let nbdkit else { throw EngineError("nbdkit is not installed: run host/setup.sh") }
    process.executableURL = URL(fileURLWithPath: nbdkit)
    var args = ["--foreground", "--readonly", "--exit-with-parent", "-i", "127.0.0.1", "-p", String(port)]
    if delayMilliseconds != nil { args.append("--filter=delay") }
    args += ["file", "file=" + file]
    if let d = delayMilliseconds { args.append("delay-read=\(d)ms") }
    process.arguments = args
    try process.run()
    for _ in 0..<100 {
      if (try? NBDSource(uri: uri, timeoutSeconds: 0.2)) != nil { return }
      usleep(50_000)
    }
    process.terminate()
    throw EngineError("nbdkit did not come up on port \(port)")
  }

  func kill() {
    Glibc.kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }
  deinit { if process.isRunning { kill() } }
}

@Suite(.serialized) struct NBDEngineTests {
  @Test func pagesOverNBDAreTheSnapshotsPages() throws {
    let f = try EngineTests.Fixture()
    let server = try NBDServer(file: f.ram)
    let source = try NBDSource(uri: server.uri)
    #expect(source.size == EngineTests.frames * 4096)
    let policy = KaleidoscopePolicy(map: EngineTests.map(), freeIsHole: true)
    let cache = try HostCache(
      path: f.dir + "/cache", layout: f.layout, source: source, frameCount: EngineTests.frames, holes: policy.holes())
    defer { cache.remove() }
    let engine = try Engine(cache: cache, policy: policy, layout: f.layout, socketPath: f.dir + "/sock")
    _ = try engine.prepare()
    engine.start()
    let trace = EngineTests.trace()
    let report = try ReplayWorker.run(
      cachePath: cache.path, layout: f.layout, holes: policy.holes(), trace: trace,
      snapshot: try LocalRAMSource(path: f.ram), socketPath: f.dir + "/sock")
    _ = engine.stop()
    #expect(engine.errors.isEmpty)
    #expect(report.mismatches == 0)
    #expect(report.verifiedPages == UInt64(Set(trace.map(\.frame)).count))
  }

  @Test func aDeadServerFailsTheReadWithinFiveSeconds() throws {
    let f = try EngineTests.Fixture()
    let server = try NBDServer(file: f.ram)
    let source = try NBDSource(uri: server.uri)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
    defer { buffer.deallocate() }
    try source.read(into: buffer, at: 0)
    // Stopped, not closed: the connection stays open and nothing answers (a hung server).
    Glibc.kill(server.process.processIdentifier, SIGSTOP)
    // kill() only queues the stop: wait until every thread of the server is stopped, or a
    // request sent at once may still be answered (seen on a loaded host).
    let stopDeadline = Date(timeIntervalSinceNow: 5)
    while !Self.allThreadsStopped(server.process.processIdentifier) && Date() < stopDeadline {
      usleep(1000)
    }
    #expect(Self.allThreadsStopped(server.process.processIdentifier), "nbdkit did not stop")
    let t0 = Date()
    #expect(throws: EngineError.self) { try source.read(into: buffer, at: 1 << 20) }
    let waited = Date().timeIntervalSince(t0)
    #expect(waited < 5.5, "a hung server held a read for \(waited) s")
    Glibc.kill(server.process.processIdentifier, SIGCONT)
    // Killed: the next read fails at once, and says where.
    server.kill()
    do {
      try source.read(into: buffer, at: 0)
      Issue.record("a read from a dead server succeeded")
    } catch { #expect(error.description.contains(server.uri)) }
  }

  /// Whether every thread of `pid` is in the stopped state ("T" in /proc/PID/task/TID/stat).
  static func allThreadsStopped(_ pid: Int32) -> Bool {
    let tasks = "/proc/\(pid)/task"
    guard let tids = try? FileManager.default.contentsOfDirectory(atPath: tasks), !tids.isEmpty else {
      return false
    }
    return tids.allSatisfy { tid in
      guard let stat = try? String(contentsOfFile: "\(tasks)/\(tid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
      else { return false }
      return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("T")
    }
  }
}

@Suite(.serialized) struct NBDBulkTests {
  @Test func aBulkPrefetchOverNBDCopiesExactlyTheMissingFrames() throws {
    let f = try EngineTests.Fixture()
    let server = try NBDServer(file: f.ram)
    // Small requests and windows, so a stripe spans many requests and a worker many stripes.
    let source = try NBDSource(uri: server.uri, requestBytes: 16 << 10, window: 3)
    let holes = [FrameRange(start: 100, count: 50), FrameRange(start: 4000, count: 1)]
    let cache = try HostCache(path: f.dir + "/cache", layout: f.layout, source: source, frameCount: EngineTests.frames, holes: holes)
    defer { cache.remove() }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { buffer.deallocate() }
    // Two frames already there: not fetched again.
    try cache.ensure([FrameRange(start: 7, count: 2)], buffer: buffer)
    let added = try cache.ensureInParallel([FrameRange(start: 0, count: 6000)], parallelism: 3, stripeFrames: 37)
    #expect(added == 6000 - 51 - 2)
    #expect(cache.fetched == 6000 - 51)
    let ram = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f.ram)))
    let copy = [UInt8](try Data(contentsOf: URL(fileURLWithPath: cache.path)))
    for frame in 0..<6000 {
      let o = frame * 4096
      let hole = holes.contains { $0.start <= UInt64(frame) && UInt64(frame) < $0.end }
      if hole {
        #expect(copy[o..<o + 4096].allSatisfy { $0 == 0 }, "hole \(frame) was written")
        #expect(!cache.isPresent(UInt64(frame)))
      } else {
        #expect(copy[o..<o + 4096] == ram[o..<o + 4096], "frame \(frame) differs")
        #expect(cache.isPresent(UInt64(frame)))
      }
    }
    #expect(!cache.isPresent(6000))
  }

  @Test func aBulkPrefetchFromAHungServerFailsWithinFiveSeconds() throws {
    let f = try EngineTests.Fixture()
    let server = try NBDServer(file: f.ram)
    let source = try NBDSource(uri: server.uri)
    let cache = try HostCache(path: f.dir + "/cache", layout: f.layout, source: source, frameCount: EngineTests.frames, holes: [])
    defer { cache.remove() }
    // Stopped, not closed: nothing answers, and the copy must not wait forever.
    Glibc.kill(server.process.processIdentifier, SIGSTOP)
    let t0 = Date()
    #expect(throws: EngineError.self) { try cache.ensureInParallel([FrameRange(start: 0, count: EngineTests.frames)]) }
    let waited = Date().timeIntervalSince(t0)
    #expect(waited < 6, "a hung server held a bulk prefetch for \(waited) s")
    Glibc.kill(server.process.processIdentifier, SIGCONT)
    server.kill()
    #expect(throws: EngineError.self) { try cache.ensureInParallel([FrameRange(start: 0, count: EngineTests.frames)]) }
  }
}

@Suite struct SnapshotChangeTests {
  @Test func aSourceWrittenUnderTheEngineIsRefused() throws {
    let f = try EngineTests.Fixture()
    let source = try LocalRAMSource(path: f.ram)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { buffer.deallocate() }
    try source.read(into: buffer, at: 0)
    usleep(10_000)  // a later mtime, whatever the clock's granularity
    let h = try FileHandle(forWritingTo: URL(fileURLWithPath: f.ram))
    try h.seek(toOffset: 4096)
    h.write(Data([1, 2, 3]))
    try h.close()
    #expect(throws: EngineError.self) { try source.read(into: buffer, at: 0) }
    do { try source.read(into: buffer, at: 0) } catch { #expect(error.description.contains("changed under the engine")) }
  }
}

@Suite struct EngineSocketTests {
  @Test func anEngineGoneLateLeavesTheNextEnginesSocketInPlace() throws {
    let f = try EngineTests.Fixture()
    let source = try LocalRAMSource(path: f.ram)
    let cache = try HostCache(path: f.dir + "/cache", layout: f.layout, source: source, frameCount: EngineTests.frames, holes: [])
    defer { cache.remove() }
    let path = f.dir + "/sock"
    var first: Engine? = try Engine(cache: cache, policy: OnDemandPolicy(), layout: f.layout, socketPath: path)
    _ = first
    // The next engine on the same path (as a benchmark's next run makes it), then the first one
    // goes away: the path must still be the second engine's socket.
    let second = try Engine(cache: cache, policy: OnDemandPolicy(), layout: f.layout, socketPath: path)
    first = nil
    #expect(FileManager.default.fileExists(atPath: path), "the first engine removed the second's socket")
    second.start()
    let client = try EngineClient(cachePath: cache.path, layout: f.layout, holes: [], socketPath: path)
    client.hangUp()
    _ = second.stop()
    #expect(second.errors.isEmpty, "\(second.errors)")
  }
}
