import ArgumentParser
import Foundation
import KscopeClone
import KscopeCore
import KscopeEngine
import KscopeMaps
import KscopeOS
import KscopeVM

/// Where the engine of one (snapshot, map, policy, source) lives, and the arguments that start
/// it. `vm clone --lazy` and `clone engine` agree on both, so clones of one snapshot under one
/// policy share one engine and one host cache file.
struct EngineSpec {
  let snapshot: String
  let map: String?
  let policy: PolicyOptions
  let from: String?
  let cacheRoot: String

  /// The absolute, symlink-free form of a path the user gave (the key must not depend on how
  /// the path was spelled).
  static func canonical(_ path: String) throws -> String {
    do { return try Files.canonicalPath(path) } catch { throw CommandFailure(error.description) }
  }

  init(snapshot: String, map: String?, policy: PolicyOptions, from: String?, cacheRoot: String) throws {
    self.snapshot = try Self.canonical(snapshot)
    self.map = try map.map(Self.canonical)
    self.policy = policy
    self.from = from
    self.cacheRoot = cacheRoot
  }

  var key: String {
    let text = [snapshot, map ?? "-", policy.policy, policy.workingSet ?? "-", policy.fetchFree ? "free" : "nofree", from ?? "local"]
      .joined(separator: "\u{0}")
    return String(XXH64.hash(Array(text.utf8)), radix: 16)
  }

  func directory() throws -> EngineDirectory {
    do { return try EngineDirectory.forKey(key, root: cacheRoot) } catch { throw CommandFailure(error.description) }
  }

  var arguments: [String] {
    var a = ["clone", "engine", "--snapshot", snapshot, "--policy", policy.policy, "--cache-dir", cacheRoot]
    if let map { a += ["--map", map] }
    if let ws = policy.workingSet { a += ["--working-set", ws] }
    if policy.fetchFree { a.append("--fetch-free") }
    if let from { a += ["--from", from] }
    return a
  }

  /// Makes sure this spec's engine serves, starting it if needed, and returns its directory and
  /// the use lock (held until the clone is handed over, so the engine does not end meanwhile).
  func ensureRunning(progress: ProgressLine?) throws -> (EngineDirectory, LockFile) {
    let dir = try directory()
    let useLock: LockFile
    do { useLock = try LockFile.lock(dir.useLock, exclusive: false) } catch {
      throw CommandFailure(error.description)
    }
    do {
      let live = EngineService.isLive(dir)
      if !(live && Files.exists(dir.readyFile)) {
        if !live {
          HostProcess.unlink(dir.readyFile)
          let me = try Self.canonical(CommandLine.arguments[0])
          progress?.update("starting the clone engine (\(policy.policy))")
          _ = try EngineService.spawnDetached([me] + arguments, logPath: dir.logFile)
        }
        try waitReady(dir)
      }
      return (dir, useLock)
    } catch {
      useLock.release()
      throw error
    }
  }

  /// Waits for the engine's ready file (it fetches the policy's resume set first); fails with
  /// the engine's last log line if it ends.
  func waitReady(_ dir: EngineDirectory, timeout: Double = 300) throws {
    let deadline = Date(timeIntervalSinceNow: timeout)
    let t0 = Date()
    while Date() < deadline {
      if Files.exists(dir.readyFile) { return }
      // Give a starting engine a moment to take its lock before calling it dead.
      if Date().timeIntervalSince(t0) > 2, !EngineService.isLive(dir) {
        let log = Files.readText(dir.logFile) ?? ""
        var last = log.split(separator: "\n").last.map(String.init) ?? "no output"
        if last.hasPrefix("Error: ") { last.removeFirst("Error: ".count) }
        throw CommandFailure("the clone engine ended before serving: \(last)")
      }
      Thread.sleep(forTimeInterval: 0.01)
    }
    throw CommandFailure("the clone engine was not ready within \(Int(timeout)) s (see \(dir.logFile))")
  }
}

struct CloneEngineCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "engine",
    abstract: "Serve the lazy clones of one snapshot (started by 'vm clone --lazy' when needed).",
    discussion: """
      Makes the host cache file (sparse, on tmpfs) under CACHE-DIR/kscope-engines/KEY, where KEY \
      names the snapshot, map, policy and source; fetches the policy's resume set; then serves the \
      userfaultfd misses of every clone whose QEMU hands its RAM over (host/shim). It publishes \
      per-clone statistics in stats.json (read by 'kscope vm stats') and ends once its last clone \
      is gone, or if no clone came within --first-client-timeout seconds.
      """)

  @Option(help: "The snapshot directory.") var snapshot: String
  @Option(help: "The parent's color map (default: the snapshot's map.kcm, if any).") var map: String?
  @OptionGroup var policy: PolicyOptions
  @Option(help: "Take pages from 'kscope serve' (nbd://HOST:PORT/) instead of the local RAM file.")
  var from: String?
  @Option(help: "tmpfs directory for the engine's files.") var cacheDir = "/dev/shm"
  @Option(help: "Seconds to wait for the first clone before ending.") var firstClientTimeout = 60.0
  @OptionGroup var out: OutputOptions

  func validate() throws {
    guard firstClientTimeout > 0, firstClientTimeout <= 86400 else {
      throw ValidationError("--first-client-timeout must be in (0, 86400] seconds")
    }
  }

  func run() throws {
    let spec = try EngineSpec(snapshot: snapshot, map: map, policy: policy, from: from, cacheRoot: cacheDir)
    let dir = try spec.directory()
    guard let lifeFD = EngineService.claim(dir) else {
      throw CommandFailure("an engine already serves \(dir.path)")
    }
    defer { Files.closeDescriptor(lifeFD) }
    let inputs = try ReplayInputs(snapshot: snapshot, mapPath: spec.map, options: policy, tracePath: nil, checkDigest: true)
    let reason: String
    do {
      let source = try inputs.pageSource(from: from)
      let holes = inputs.policy.holes()
      let cache = try HostCache(
        path: dir.cacheFile, layout: inputs.layout, source: source, frameCount: inputs.map.frameCount, holes: holes)
      try Files.writeAtomically(EngineService.holeRuns(holes, layout: inputs.layout), to: dir.holeFile, mode: 0o600)
      HostProcess.unlink(dir.socket)
      let engine = try Engine(cache: cache, policy: inputs.policy, layout: inputs.layout, socketPath: dir.socket)
      let prepared = try engine.prepare()
      engine.start()
      FileHandle.standardError.write(Data("engine \(ProcessUsage.id) serves \(dir.path) (\(policy.policy), \(prepared.pages) pages before resume in \(String(format: "%.3f", prepared.seconds)) s)\n".utf8))
      reason = EngineService.serve(
        engine: engine, prepared: prepared, directory: dir,
        description: .init(policy: policy.policy, snapshot: spec.snapshot, source: from ?? "local"),
        firstClientTimeout: firstClientTimeout)
    } catch let e as EngineError {
      throw CommandFailure(e.description)
    } catch let e as FileError {
      throw CommandFailure(e.description)
    }
    if out.json {
      try printJSON(["directory": dir.path, "ended": reason])
    } else {
      print("engine for \(dir.path) ended: \(reason)")
    }
  }
}
