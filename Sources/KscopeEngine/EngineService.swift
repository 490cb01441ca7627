import Foundation
import KscopeClone
import KscopeOS

/// The files of one long-running engine (`kscope clone engine`): the lazy clones of one snapshot
/// under one policy and source share it, and with it one host cache file. The directory lives on
/// tmpfs (userfaultfd serves private mappings of shmem files, not of disk files).
public struct EngineDirectory: Sendable {
  public let path: String
  public init(_ path: String) { self.path = path }
  public var cacheFile: String { path + "/cache.ram" }
  public var socket: String { path + "/engine.sock" }
  /// (file offset, length) u64 pairs of the free runs the shim leaves unregistered.
  public var holeFile: String { path + "/holes.bin" }
  /// Written once the resume set is fetched and faults are served.
  public var readyFile: String { path + "/ready.json" }
  public var statsFile: String { path + "/stats.json" }
  /// The frames a clone missed on, in order, written when it disconnects (`Trace` format).
  /// Under `on-demand`, for the engine's first clone, that is its first-touch order: the
  /// working set that the working-set policies fetch first.
  public func firstTouchTrace(pid: Int32) -> String { path + "/first-touch-\(pid).trace" }
  public var logFile: String { path + "/engine.log" }
  /// Held (exclusively) by the live engine for its whole life: at most one per directory.
  public var lifeLock: String { path + "/engine.lock" }
  /// Held (shared) by each `vm clone` while it starts a clone, so the engine does not end under it.
  public var useLock: String { path + "/use.lock" }

  /// Root of the engines of this host, `<root>/kscope-engines/<key>`: `key` names the snapshot,
  /// policy and source (clones that differ in any of them cannot share a cache file).
  public static func forKey(_ key: String, root: String) throws(EngineError) -> EngineDirectory {
    let base = root + "/kscope-engines"
    try makePrivateDirectory(base)
    let d = EngineDirectory(base + "/" + key)
    try makePrivateDirectory(d.path)
    return d
  }

  /// mkdir 0700, or check that what is there is our own directory (not a symlink planted in a
  /// shared tmpfs).
  static func makePrivateDirectory(_ path: String) throws(EngineError) {
    do { try HostProcess.makePrivateDirectory(path) } catch { throw EngineError(error.description) }
  }
}

/// What an engine publishes in stats.json: totals, and per clone what it served.
public struct EngineStats: Codable, Sendable {
  public struct Client: Codable, Sendable {
    public var pid: Int32
    public var connected: Bool
    public var seconds: Double
    public var demandFaults: UInt64
    public var zeroFilled: UInt64
    public var refetched: UInt64
    /// Engine-side service time of its misses (fault read to wake), microseconds.
    public var faultLatencyUs: Latency
    /// Faults on pages already there when read (two threads on one page): woken only.
    public var lateFaults: UInt64 = 0
    /// Guest RAM pages it gave back (MADV_DONTNEED), unmapped, and its mremaps.
    public var removedPages: UInt64 = 0
    public var unmappedPages: UInt64 = 0
    public var remaps: UInt64 = 0
  }
  public struct Latency: Codable, Sendable {
    public var count: UInt64
    public var p50: Double
    public var p99: Double
    public var max: Double
  }
  public var pid: Int32
  public var state: String
  public var policy: String
  public var snapshot: String
  public var source: String
  public var frames: UInt64
  public var holes: UInt64
  public var preparedPages: UInt64
  public var prepareSeconds: Double
  public var pagesFetched: UInt64
  public var cacheResidentPages: UInt64
  public var queuedFrames: UInt64
  public var clients: [Client]
  public var errors: [String]

  public static let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.keyEncodingStrategy = .convertToSnakeCase
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return e
  }()
  public static let decoder: JSONDecoder = {
    let d = JSONDecoder()
    d.keyDecodingStrategy = .convertFromSnakeCase
    return d
  }()

  /// Reads an engine's stats file (bounded; it is ours, but a damaged one gets one line).
  public static func read(_ path: String) throws(EngineError) -> EngineStats {
    let bytes: [UInt8]
    do { bytes = try Files.readBounded(path, limit: 64 << 20) } catch {
      throw EngineError("no engine statistics at \(path): \(error.description)")
    }
    do { return try decoder.decode(EngineStats.self, from: Data(bytes)) } catch {
      throw EngineError("\(path) is damaged")
    }
  }

  public func client(pid: Int32) -> Client? { clients.last { $0.pid == pid } }
}

/// Runs an engine as a service until its clones are gone: publishes readiness and statistics
/// in its directory, and ends when the last clone hangs up (or when none came within
/// `firstClientTimeout`, or on SIGTERM/SIGINT). On the way out it removes the cache file, the
/// socket and the hole file, and leaves the final stats for `kscope vm stats`.
public enum EngineService {
  /// Takes the directory's life lock; false if another engine holds it.
  public static func claim(_ dir: EngineDirectory) -> Int32? {
    LockFile.tryLock(dir.lifeLock)?.fd
  }

  /// True if an engine holds the directory's life lock.
  public static func isLive(_ dir: EngineDirectory) -> Bool {
    guard let lock = LockFile.tryLock(dir.lifeLock) else { return Files.exists(dir.lifeLock) }
    lock.release()
    return false
  }

  /// The (file offset, length) pairs of hole runs of at least `minFrames` frames: the shim
  /// leaves them unregistered, so the kernel zero-fills them without a round trip.
  public static func holeRuns(_ holes: [FrameRange], layout: RAMLayout, minFrames: UInt64 = 512) -> [UInt8] {
    var out: [UInt8] = []
    func put(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    for h in holes where h.count >= minFrames {
      for run in layout.fileRuns(h) {
        put(run.fileOffset)
        put(run.count * layout.pageSize)
      }
    }
    return out
  }

  public struct Description: Sendable {
    public var policy: String
    public var snapshot: String
    public var source: String
    public init(policy: String, snapshot: String, source: String) {
      self.policy = policy
      self.snapshot = snapshot
      self.source = source
    }
  }

  /// Serves until the clones are gone; returns why it ended.
  public static func serve(
    engine: Engine, prepared: (pages: UInt64, seconds: Double), directory dir: EngineDirectory,
    description: Description, firstClientTimeout: Double = 60
  ) -> String {
    HostProcess.catchTermination()
    let started = MonotonicClock.nanoseconds()
    func stats(_ state: String) -> EngineStats {
      let records = engine.clientRecords()
      let now = MonotonicClock.nanoseconds()
      return EngineStats(
        pid: ProcessUsage.id, state: state, policy: description.policy, snapshot: description.snapshot,
        source: description.source, frames: UInt64(engine.cache.holes.count),
        holes: engine.cache.holes.population, preparedPages: prepared.pages,
        prepareSeconds: prepared.seconds, pagesFetched: engine.cache.fetched,
        cacheResidentPages: engine.cache.residentPages(), queuedFrames: engine.queuedFrames,
        clients: records.map { r in
          // The running histogram the handler keeps as it serves (not rebuilt from the faults).
          let s = r.latency.summary
          return EngineStats.Client(
            pid: r.peerPID > 0 ? r.peerPID : Int32(bitPattern: r.pid), connected: r.connected,
            seconds: Double(now - r.connectedAtNanoseconds) / 1e9, demandFaults: r.faultCount,
            zeroFilled: r.zeroFilled, refetched: r.refetched,
            faultLatencyUs: .init(count: s.count, p50: s.p50, p99: s.p99, max: s.max),
            lateFaults: r.lateFaults, removedPages: r.removedPages, unmappedPages: r.unmappedPages,
            remaps: r.remaps)
        },
        errors: engine.errors)
    }
    func publish(_ s: EngineStats) {
      if let data = try? EngineStats.encoder.encode(s) {
        try? Files.writeAtomically([UInt8](data), to: dir.statsFile, mode: 0o600)
      }
    }
    // The first-touch traces of an earlier engine's clones (`vm stop --working-set` copies its
    // clone's as it stops) go, so the directory does not grow with every clone it served.
    for e in Files.listDirectory(dir.path, limit: 1 << 16)
    where e.name.hasPrefix("first-touch-") && e.name.hasSuffix(".trace") {
      HostProcess.unlink(dir.path + "/" + e.name)
    }
    // Clones whose first-touch trace is written (by their index in the engine's records).
    var traced = Set<Int>()
    func writeTraces(ofAll: Bool) {
      for (k, r) in engine.clientRecords().enumerated() where (ofAll || !r.connected) && !traced.contains(k) {
        traced.insert(k)
        let pid = r.peerPID > 0 ? r.peerPID : Int32(bitPattern: r.pid)
        let text = firstTouchText(r.faults.lazy.map(\.frame), pid: pid, policy: description.policy)
        try? Files.writeAtomically(text, to: dir.firstTouchTrace(pid: pid), mode: 0o600)
      }
    }
    publish(stats("serving"))
    let readyLine = "{\"pid\":\(ProcessUsage.id),\"socket\":\"\(dir.socket)\",\"prepared_pages\":\(prepared.pages)}\n"
    try? Files.writeAtomically(Array(readyLine.utf8), to: dir.readyFile, mode: 0o600)
    var reason = ""
    var lastPublish = MonotonicClock.nanoseconds()
    while reason.isEmpty {
      HostProcess.sleep(microseconds: 100_000)
      let records = engine.clientRecords()
      let now = MonotonicClock.nanoseconds()
      var candidate = ""
      if HostProcess.terminationRequested {
        candidate = "stopped by a signal"
      } else if records.isEmpty && Double(now - started) / 1e9 > firstClientTimeout {
        candidate = "no clone connected within \(Int(firstClientTimeout)) s"
      } else if !records.isEmpty && !records.contains(where: \.connected) {
        candidate = "its last clone is gone"
      }
      if !candidate.isEmpty {
        // A `vm clone` holding the use lock is about to hand a new clone over: stay. With its
        // directory gone (removed under it), no clone can find it, and the lock cannot be
        // taken to tell: end rather than wait forever.
        if LockFile.tryLock(dir.useLock) != nil || !Files.exists(dir.path) {
          reason = candidate
          HostProcess.unlink(dir.readyFile)
          HostProcess.unlink(dir.socket)
          // Keep the use lock until exit (never released); a waiting `vm clone` then starts a
          // new engine.
        }
      }
      writeTraces(ofAll: false)
      if now - lastPublish > 500_000_000 {
        publish(stats("serving"))
        lastPublish = now
      }
    }
    _ = engine.stop()
    writeTraces(ofAll: true)
    publish(stats("ended: \(reason)"))
    engine.cache.remove()
    HostProcess.unlink(dir.holeFile)
    return reason
  }

  /// A clone's missed frames as a trace: each frame once, in the order of its first miss (a
  /// frame missed again after its page was given back is not a new touch). At most
  /// `Engine.ClientRecord.maxFaultRecords` misses are kept per clone; the comment says when the
  /// trace stops short.
  static func firstTouchText<S: Sequence>(_ frames: S, pid: Int32, policy: String) -> String
  where S.Element == UInt64 {
    var seen = Set<UInt64>()
    var accesses: [Access] = []
    var misses = 0
    for f in frames {
      misses += 1
      if seen.insert(f).inserted { accesses.append(Access(frame: f, write: false)) }
    }
    let full = misses < Engine.ClientRecord.maxFaultRecords
    return Trace.text(
      accesses,
      comment: "first-touch order of clone \(pid) (its demand misses, policy \(policy))"
        + (full ? "" : "; only its first \(Engine.ClientRecord.maxFaultRecords) misses were kept"))
  }

  /// Starts `argv` (argv[0] absolute) as a detached process in its own session (setsid), stdin
  /// from /dev/null and output appended to `logPath`: the engine outlives the `vm clone` that
  /// started it. Returns its pid.
  public static func spawnDetached(_ argv: [String], logPath: String) throws(EngineError) -> Int32 {
    let pid: Int32
    do {
      pid = try ChildProcess.spawn(
        argv, .init(output: logPath, append: true, errorsToo: true, noInput: true, newSession: true, inheritNothing: true))
    } catch { throw EngineError("cannot start \(argv[0]): \(error.description)") }
    // Reap it in the background if it ends while we still run (it normally outlives us).
    HostProcess.reapInBackground(pid)
    return pid
  }
}
