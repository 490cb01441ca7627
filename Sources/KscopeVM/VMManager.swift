import Foundation
import KscopeOS

/// A VM's record on disk (`<state>/vms/<name>/vm.json`), written before QEMU starts so that a
/// VM can always be found and stopped, even after a failed start.
public struct VMRecord: Codable, Equatable, Sendable {
  public var config: VMConfig
  public var qemuCommandLine: [String]
  public var startedAt: String
  /// The snapshot directory this VM was cloned from, if it is a clone.
  public var clonedFrom: String?
}

/// What `kscope vm list` shows for one VM.
public struct VMStatus: Sendable {
  public var name: String
  public var pid: Int32?
  /// "running", "paused", "postmigrate", ... (QMP query-status), or "dead".
  public var state: String
  public var hostPort: UInt16
  public var kernelRelease: String
  public var workload: String
  public var memoryBytes: UInt64
  public var directory: String
  public var clonedFrom: String?
  /// How a clone's RAM is provided ("copy", "template", "lazy") and, for lazy clones, the policy.
  public var ramMode: String = "own"
  public var policy: String?
  /// A clone's start, step by step (seconds): from the request to its vCPUs running, and to its
  /// first answer.
  public var timings: [(step: String, seconds: Double)] = []

  public var json: [String: Any] {
    var d: [String: Any] = [
      "name": name, "state": state, "host_port": Int(hostPort), "kernel": kernelRelease,
      "workload": workload, "memory_bytes": memoryBytes, "directory": directory,
      "url": "http://127.0.0.1:\(hostPort)/",
    ]
    if let pid { d["pid"] = Int(pid) }
    if let clonedFrom {
      d["cloned_from"] = clonedFrom
      d["ram"] = ramMode
    }
    if let policy { d["policy"] = policy }
    if !timings.isEmpty {
      d["timings_s"] = Dictionary(timings.map { ($0.step, ($0.seconds * 1e6).rounded() / 1e6) }) { a, _ in a }
    }
    return d
  }
}

/// Options for `start`.
public struct StartOptions: Sendable {
  public var memory: UInt64 = 512 << 20
  public var cpus = 1
  public var kernelSeries = "6.1"
  public var workload = Workload.web
  public var olapMiB = ImageSpec.defaultOlapMiB
  public var siteMiB = SiteGenerator.defaultSiteMiB
  public var agent: String?
  public var assets: String?
  /// A virtio-balloon with free page reporting: the guest hands free 2 MiB blocks back and QEMU
  /// punches them out of the RAM file, so snapshots hold fewer pages (the baseline a modern user
  /// would pick to avoid copying free pages). Clones carry the device; the shim keeps their
  /// discards off the shared RAM file.
  public var freePageReporting = false
  /// How long the guest may take to answer its workload (TCG boots take seconds; a slow CI
  /// machine gets a generous bound).
  public var bootTimeout: Double = 180
  public init() {}
}

/// Owns the VMs under one state directory: `<state>/vms/<name>/` per VM (RAM file, hint file,
/// sockets, console log, pid file, vm.json) and `<state>/images/<key>/` for built images.
public struct VMManager: Sendable {
  public let stateDir: String

  public static let defaultStateDir = "/dev/shm/kscope"

  public init(stateDir: String = VMManager.defaultStateDir) {
    self.stateDir = stateDir
  }

  func vmDir(_ name: String) -> String { stateDir + "/vms/" + name }

  public static func validateName(_ name: String) throws {
    let ok =
      !name.isEmpty && name.count <= 40
      && name.unicodeScalars.allSatisfy {
        CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "-" || $0 == "_"
      }
    guard ok else {
      throw VMError.invalidArgument("bad VM name '\(name)' (letters, digits, - and _, at most 40)")
    }
  }

  // MARK: images

  public func buildImage(_ options: StartOptions, log: (String) -> Void = { _ in }) throws
    -> GuestImage
  {
    var spec = ImageSpec(
      kernelSeries: options.kernelSeries, workload: options.workload, olapMiB: options.olapMiB,
      agent: options.agent, assets: try options.assets ?? GuestImage.locateAssets())
    spec.siteMiB = options.siteMiB
    return try GuestImage.build(spec, stateDir: stateDir, log: log)
  }

  // MARK: start

  /// Starts a parent VM and returns once its workload answers over HTTP.
  @discardableResult
  public func start(name: String, options: StartOptions, log: (String) -> Void = { _ in }) throws
    -> VMStatus
  {
    try VMManager.validateName(name)
    guard options.cpus >= 1, options.cpus <= 8 else {
      throw VMError.invalidArgument("cpus must be 1..8")
    }
    _ = try ProcessRunner.which("qemu-system-x86_64")
    let image = try buildImage(options, log: log)
    let dir = try prepareDirectory(name)
    var config = VMConfig(
      name: name, directory: dir, memoryBytes: options.memory, cpus: options.cpus,
      kernel: image.kernel, image: image, hostPort: try freeLoopbackPort())
    config.freePageReporting = options.freePageReporting ? true : nil
    try launch(config, incoming: false, clonedFrom: nil)
    do {
      try waitForWorkload(config, timeout: options.bootTimeout)
    } catch {
      try? stop(name: name)
      throw error
    }
    return try status(name)
  }

  /// Creates `<state>/vms/<name>/`, refusing if a live VM has that name; a dead VM's leftovers
  /// are removed.
  func prepareDirectory(_ name: String) throws -> String {
    let dir = vmDir(name)
    let fm = FileManager.default
    if fm.fileExists(atPath: dir) {
      if let rec = try? record(name), livePid(rec.config) != nil {
        throw VMError.vmExists(name)
      }
      try fm.removeItem(atPath: dir)
    }
    try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
  }

  /// Writes vm.json and starts QEMU daemonized (it forks, writes its pid file, and its first
  /// process exits once the machine is set up, so configuration errors surface here).
  func launch(
    _ config: VMConfig, incoming: Bool, clonedFrom: String?, environment: [String: String] = [:]
  ) throws {
    let argv = config.qemuArguments(incoming: incoming)
    let rec = VMRecord(
      config: config, qemuCommandLine: argv, startedAt: iso8601(Date()), clonedFrom: clonedFrom)
    try writeAtomically(try VMManager.encoder.encode(rec), to: config.directory + "/vm.json")
    var qemu = argv
    qemu[0] = try ProcessRunner.which(argv[0])
    let status = try spawnAndWait(qemu, logPath: config.qemuLogPath, environment: environment)
    if status != 0 {
      let log = (try? String(contentsOfFile: config.qemuLogPath, encoding: .utf8)) ?? ""
      try? FileManager.default.removeItem(atPath: config.directory)
      let why = log.split(separator: "\n").last.map(String.init) ?? "no output"
      throw VMError.bootFailed(reason: "QEMU exited with status \(status): \(why)", consoleTail: "")
    }
    guard livePid(config) != nil else {
      let tail = consoleTail(config)
      try? FileManager.default.removeItem(atPath: config.directory)
      throw VMError.bootFailed(reason: "QEMU is not running after start", consoleTail: tail)
    }
  }

  /// Polls the workload's readiness URL until it answers 200; fails early if QEMU dies.
  /// Waits until the workload answers 200; fails early if QEMU dies. A booting parent is first
  /// watched on its console until init prints "kscope-init: ready" (cheap, 50 ms polls): an HTTP
  /// probe sent earlier hangs in slirp until its timeout, which would round boot times up.
  /// A resumed clone prints nothing new, so it is probed over HTTP at once.
  func waitForWorkload(_ config: VMConfig, timeout: Double, watchConsole: Bool = true) throws {
    let deadline = Date(timeIntervalSinceNow: timeout)
    let path = config.image.workload.readinessPath
    func alive() throws {
      guard livePid(config) != nil else {
        throw VMError.bootFailed(
          reason: "QEMU for '\(config.name)' exited while booting", consoleTail: consoleTail(config)
        )
      }
    }
    if watchConsole {
      while Date() < deadline {
        try alive()
        if let log = FileManager.default.contents(atPath: config.consolePath),
          log.range(of: Data("kscope-init: ready".utf8)) != nil
        {
          break
        }
        Thread.sleep(forTimeInterval: 0.05)
      }
    }
    while Date() < deadline {
      try alive()
      let probe = min(5, max(0.2, deadline.timeIntervalSinceNow))
      if let r = try? HTTPClient.get(port: config.hostPort, path: path, timeout: probe),
        r.status == 200
      {
        return
      }
      Thread.sleep(forTimeInterval: 0.05)
    }
    throw VMError.bootFailed(
      reason: "'\(config.name)' did not answer \(path) within \(Int(timeout)) s",
      consoleTail: consoleTail(config))
  }

  func consoleTail(_ config: VMConfig) -> String {
    guard let fh = FileHandle(forReadingAtPath: config.consolePath) else { return "" }
    defer { try? fh.close() }
    let size = (try? fh.seekToEnd()) ?? 0
    try? fh.seek(toOffset: size > 4096 ? size - 4096 : 0)
    let text = String(decoding: fh.readDataToEndOfFile(), as: UTF8.self)
    let lines = text.unicodeScalars.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
    return lines.suffix(12).map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
  }

  // MARK: records and processes

  static let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return e
  }()

  public func record(_ name: String) throws -> VMRecord {
    try VMManager.validateName(name)
    guard let data = FileManager.default.contents(atPath: vmDir(name) + "/vm.json") else {
      throw VMError.noSuchVM(name)
    }
    do { return try JSONDecoder().decode(VMRecord.self, from: data) } catch {
      throw VMError.invalidArgument("\(vmDir(name))/vm.json is damaged")
    }
  }

  /// The QEMU pid from the pid file, if that process is alive and really is this VM's QEMU
  /// (its command line names this VM's directory), so a recycled pid is never signalled.
  func livePid(_ config: VMConfig) -> Int32? {
    livePid(pidPath: config.pidPath, directory: config.directory)
  }

  func livePid(pidPath: String, directory: String) -> Int32? {
    guard let text = try? String(contentsOfFile: pidPath, encoding: .utf8),
      let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
      Signals.processExists(pid),
      let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
    else { return nil }
    let args = String(decoding: cmdline, as: UTF8.self)
    return args.contains(directory + "/") ? pid : nil
  }

  public func names() -> [String] {
    let list = (try? FileManager.default.contentsOfDirectory(atPath: stateDir + "/vms")) ?? []
    return list.filter { !$0.hasPrefix(".") }.sorted()
  }

  public func status(_ name: String) throws -> VMStatus {
    let rec = try record(name)
    let pid = livePid(rec.config)
    var state = "dead"
    if pid != nil {
      state = "unknown"
      if let q = try? QMPClient(path: rec.config.qmpPath, timeout: 3) {
        state = (try? q.execute("query-status", timeout: 3))?["status"]?.string ?? "unknown"
        q.close()
      }
    }
    var st = VMStatus(
      name: name, pid: pid, state: state, hostPort: rec.config.hostPort,
      kernelRelease: rec.config.kernel.release, workload: rec.config.image.workload.rawValue,
      memoryBytes: rec.config.memoryBytes, directory: rec.config.directory,
      clonedFrom: rec.clonedFrom)
    if rec.clonedFrom != nil { st.ramMode = rec.config.ramBacking?.mode ?? "copy" }
    st.policy = rec.config.ramBacking?.policy
    return st
  }

  public func list() -> [VMStatus] { names().compactMap { try? status($0) } }

  public func qmp(_ name: String, timeout: Double = 10) throws -> QMPClient {
    let rec = try record(name)
    guard livePid(rec.config) != nil else { throw VMError.guest("VM '\(name)' is not running") }
    return try QMPClient(path: rec.config.qmpPath, timeout: timeout)
  }

  // MARK: stop

  /// Stops the VM (QMP quit, then SIGTERM, then SIGKILL, each bounded) and removes its
  /// directory: RAM file, hint file, sockets, logs.
  public func stop(name: String) throws {
    try VMManager.validateName(name)
    let dir = vmDir(name)
    guard FileManager.default.fileExists(atPath: dir) else { throw VMError.noSuchVM(name) }
    // A damaged vm.json must not leave a QEMU behind: the pid file and socket paths are fixed.
    let pidPath = dir + "/qemu.pid"
    let qmpPath = dir + "/qmp.sock"
    if let pid = livePid(pidPath: pidPath, directory: dir) {
      if let q = try? QMPClient(path: qmpPath, timeout: 3) {
        _ = try? q.execute("quit", timeout: 3)
        q.close()
      }
      if !waitExit(pid, seconds: 10) {
        Signals.send(Signals.terminate, to: pid)
        if !waitExit(pid, seconds: 5) {
          Signals.send(Signals.kill, to: pid)
          _ = waitExit(pid, seconds: 5)
        }
      }
      if Signals.processExists(pid) { throw VMError.timeout("QEMU pid \(pid) of '\(name)' did not exit") }
    }
    try FileManager.default.removeItem(atPath: dir)
  }

  /// Stops every VM under this state directory (test cleanup). Errors are collected, not thrown
  /// half-way, so one stuck VM does not leave the others running.
  public func stopAll() -> [String] {
    var errors: [String] = []
    for n in names() {
      do { try stop(name: n) } catch { errors.append("\(n): \(error)") }
    }
    return errors
  }

  func waitExit(_ pid: Int32, seconds: Double) -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
      if !Signals.processExists(pid) { return true }
      Thread.sleep(forTimeInterval: 0.05)
    }
    return !Signals.processExists(pid)
  }
}
