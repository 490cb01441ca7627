import Foundation

extension VMManager {
  /// Snapshots a running VM into `directory`: pause, save device state with x-ignore-shared (the
  /// RAM is a shared file, so it is not in the stream), copy the RAM file (holes kept), copy the
  /// hint region, write manifest.json last. With `resume` the parent continues afterwards;
  /// otherwise it stays paused (QMP state "postmigrate"; `cont` resumes it).
  @discardableResult
  public func snapshot(
    name: String, to directory: String, resume: Bool, timeout: Double = 120,
    progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
  ) throws -> SnapshotManifest
  {
    let rec = try record(name)
    let dir = URL(fileURLWithPath: directory).standardizedFileURL.path
    guard !dir.contains("'") else {
      throw VMError.invalidArgument("snapshot path contains a quote")
    }
    let fm = FileManager.default
    if let existing = try? fm.contentsOfDirectory(atPath: dir), !existing.isEmpty {
      throw VMError.invalidArgument("\(dir) exists and is not empty")
    }
    try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)

    let q = try qmp(name)
    defer { q.close() }
    let wasRunning = (try q.execute("query-status"))["status"]?.string == "running"
    do {
      let m = try saveSnapshot(q, record: rec, to: dir, timeout: timeout, progress: progress)
      if resume { try q.execute("cont") }
      return m
    } catch {
      // Leave the parent as we found it and no half-written snapshot behind.
      if wasRunning { _ = try? q.execute("cont") }
      try? fm.removeItem(atPath: dir)
      throw error
    }
  }

  private func saveSnapshot(
    _ q: QMPClient, record rec: VMRecord, to dir: String, timeout: Double,
    progress: (_ done: UInt64, _ total: UInt64) -> Void
  ) throws -> SnapshotManifest
  {
    let config = rec.config
    let layout = try memoryLayout(q, ramSize: config.memoryBytes)
    let pausedAt = Date()
    try q.execute("stop")
    let t0 = Date()
    try q.execute(
      "migrate-set-capabilities",
      arguments: ["capabilities": [["capability": "x-ignore-shared", "state": true]]])
    // QEMU runs the exec: URI with /bin/sh -c; the path is single-quoted (checked above).
    let partial = dir + "/device.state.partial"
    try q.execute("migrate", arguments: ["uri": "exec:cat > '\(partial)'"])
    try waitMigration(q, what: "saving device state of '\(config.name)'", timeout: timeout)
    try renameFile(partial, dir + "/device.state")
    let deviceSeconds = Date().timeIntervalSince(t0)

    let t1 = Date()
    let copied = try sparseCopy(from: config.ramPath, to: dir + "/ram", progress: progress)
    try sparseCopy(from: config.hintsPath, to: dir + "/hints")
    let ramSeconds = Date().timeIntervalSince(t1)

    let k = config.kernel
    let manifest = SnapshotManifest(
      format: SnapshotManifest.currentFormat, vmName: config.name, ram: "ram", hints: "hints",
      deviceState: "device.state", ramSize: config.memoryBytes, hintSize: config.hintBytes,
      cpus: config.cpus, memoryLayout: layout,
      kernel: .init(
        series: k.series, release: k.release, version: k.version, buildID: k.buildID,
        directory: k.directory),
      image: .init(
        key: config.image.key, workload: config.image.workload.rawValue,
        initramfs: config.image.initramfs, dataDisk: config.image.dataDisk,
        olapMiB: config.image.olapMiB, hasAgent: config.image.hasAgent),
      qemuCommandLine: rec.qemuCommandLine, pausedAt: iso8601(pausedAt),
      completedAt: iso8601(Date()), deviceStateSeconds: deviceSeconds, ramCopySeconds: ramSeconds,
      ramBytesCopied: copied)
    try writeAtomically(try manifest.encoded(), to: dir + "/manifest.json")
    return manifest
  }

  /// The guest-physical layout of the RAM file as QEMU maps it (HMP `info mtree -f`), which must
  /// cover the whole file. It is what the q35 rules predict (`q35Layout`, unit-tested); QEMU's
  /// own answer is recorded so that a different machine version cannot silently mislead readers.
  func memoryLayout(_ q: QMPClient, ramSize: UInt64) throws -> [GuestMemoryRegion] {
    let text =
      try q.execute("human-monitor-command", arguments: ["command-line": "info mtree -f"]).string
      ?? ""
    let layout = GuestMemoryRegion.parseFlatView(text)
    let covered = layout.reduce(UInt64(0)) { $0 + $1.size }
    guard covered == ramSize, layout.allSatisfy({ $0.fileOffset + $0.size <= ramSize }) else {
      throw VMError.qmp(
        "QEMU's memory map covers \(covered) of \(ramSize) RAM bytes (info mtree -f changed?)")
    }
    return layout
  }

  /// Polls query-migrate until "completed"; "failed"/"cancelled" and the deadline are errors.
  func waitMigration(_ q: QMPClient, what: String, timeout: Double) throws {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
      let info = try q.execute("query-migrate")
      switch info["status"]?.string {
      case "completed": return
      case "failed", "cancelled":
        let why = info["error-desc"]?.string ?? "no reason given"
        throw VMError.qmp("\(what): migration \(info["status"]?.string ?? ""): \(why)")
      default: Thread.sleep(forTimeInterval: 0.02)
      }
    }
    throw VMError.timeout(what)
  }

  /// Starts an eager clone of the snapshot in `directory`: its own copy of the RAM and hint
  /// files, the same devices, its own host port; QEMU waits with `-incoming defer`, loads the
  /// device state with x-ignore-shared, and `cont` resumes the guest where the parent stopped.
  /// Returns once the clone answers its workload.
  @discardableResult
  public func clone(
    snapshot directory: String, name: String, timeout: Double = 120,
    progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
  ) throws -> VMStatus
  {
    try VMManager.validateName(name)
    let snap = URL(fileURLWithPath: directory).standardizedFileURL.path
    guard !snap.contains("'") else {
      throw VMError.invalidArgument("snapshot path contains a quote")
    }
    let m = try SnapshotManifest.load(directory: snap)
    guard let workload = Workload(rawValue: m.image.workload) else {
      throw VMError.badSnapshot("unknown workload '\(m.image.workload)' in manifest")
    }
    let fm = FileManager.default
    for f in [m.image.initramfs, m.image.dataDisk, m.kernel.directory + "/vmlinuz"]
    where !fm.fileExists(atPath: f) {
      throw VMError.badSnapshot("\(f) named by the manifest is gone (rebuild with kscope vm image)")
    }
    _ = try ProcessRunner.which("qemu-system-x86_64")
    let kernel = GuestKernel(
      series: m.kernel.series, release: m.kernel.release, version: m.kernel.version,
      buildID: m.kernel.buildID, directory: m.kernel.directory)
    let imageDir = (m.image.initramfs as NSString).deletingLastPathComponent
    let image = GuestImage(
      key: m.image.key, directory: imageDir, kernel: kernel, workload: workload,
      olapMiB: m.image.olapMiB, hasAgent: m.image.hasAgent)
    guard image.initramfs == m.image.initramfs, image.dataDisk == m.image.dataDisk else {
      throw VMError.badSnapshot("image files are not in one image directory")
    }

    let dir = try prepareDirectory(name)
    let config = VMConfig(
      name: name, directory: dir, memoryBytes: m.ramSize, cpus: m.cpus, kernel: kernel,
      image: image, hostPort: try freeLoopbackPort(), hintBytes: m.hintSize, hintsShared: false)
    do {
      try sparseCopy(from: snap + "/" + m.ram, to: config.ramPath, progress: progress)
      try sparseCopy(from: snap + "/" + m.hints, to: config.hintsPath)
    } catch {
      try? fm.removeItem(atPath: dir)
      throw error
    }
    try launch(config, incoming: true, clonedFrom: snap)
    do {
      let q = try QMPClient(path: config.qmpPath, timeout: 10)
      defer { q.close() }
      try q.execute(
        "migrate-set-capabilities",
        arguments: ["capabilities": [["capability": "x-ignore-shared", "state": true]]])
      try q.execute("migrate-incoming", arguments: ["uri": "exec:cat '\(snap)/\(m.deviceState)'"])
      try waitIncoming(q, timeout: timeout)
      try q.execute("cont")
      try waitForWorkload(config, timeout: timeout, watchConsole: false)
    } catch {
      let qemuLog = (try? String(contentsOfFile: config.qemuLogPath, encoding: .utf8)) ?? ""
      let tail = qemuLog.isEmpty ? consoleTail(config) : qemuLog
      try? stop(name: name)
      if case VMError.bootFailed = error { throw error }
      throw VMError.bootFailed(reason: "clone '\(name)' failed: \(error)", consoleTail: tail)
    }
    return try status(name)
  }

  /// After `migrate-incoming` the destination is "inmigrate" until the device state is loaded,
  /// then "paused" (the parent was paused when it was saved) or "running".
  func waitIncoming(_ q: QMPClient, timeout: Double) throws {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
      let state = try q.execute("query-status")["status"]?.string ?? ""
      switch state {
      case "paused", "running": return
      case "inmigrate", "prelaunch": Thread.sleep(forTimeInterval: 0.02)
      default:
        let mig = try? q.execute("query-migrate")
        let why = mig?["error-desc"]?.string ?? "state \(state)"
        throw VMError.qmp("loading device state: \(why)")
      }
    }
    throw VMError.timeout("loading the clone's device state")
  }

  /// Resumes a paused VM (e.g. a parent snapshotted without --resume).
  public func resume(name: String) throws {
    let q = try qmp(name)
    defer { q.close() }
    try q.execute("cont")
  }
}
