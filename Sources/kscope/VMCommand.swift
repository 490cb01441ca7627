import ArgumentParser
import Foundation
import KscopeClone
import KscopeColoring
import KscopeEngine
import KscopeMaps
import KscopeCore
import KscopeOS
import KscopeVM

/// `kscope vm ...`: parent VMs under QEMU.
struct VMCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vm",
    abstract: "Build guest images, boot parent VMs under QEMU, snapshot them, eager-clone them.",
    discussion: """
      VMs run Debian's cloud kernel (6.1 or 6.12, as pinned in host/kernels.lock) under QEMU TCG with \
      their RAM in a shared file under the state directory (default /dev/shm/kscope), an ivshmem \
      hint region, a QMP socket and a loopback-only HTTP forward to the guest's workload.

      Example:
        kscope vm start web1 --kernel 6.1 --workload web
        kscope workload web --vm web1 --requests 200
        kscope vm snapshot web1 -o /dev/shm/snap-web1 --resume
        kscope vm clone /dev/shm/snap-web1 --name web1-c1
        kscope vm stop web1-c1; kscope vm stop web1
      """,
    subcommands: [
      VMImageCommand.self, VMStartCommand.self, VMListCommand.self, VMStopCommand.self,
      VMSnapshotCommand.self, VMCloneCommand.self, VMStatsCommand.self, VMExecCommand.self,
      VMResumeCommand.self,
    ])
}

/// `--state-dir`, shared by every vm and workload subcommand.
struct StateOptions: ParsableArguments {
  @Option(
    name: .long,
    help: "State directory: VMs, RAM files, cached images ($KSCOPE_STATE or /dev/shm/kscope).")
  var stateDir: String?

  var manager: VMManager {
    let env = ProcessInfo.processInfo.environment["KSCOPE_STATE"]
    return VMManager(
      stateDir: stateDir ?? (env?.isEmpty == false ? env! : VMManager.defaultStateDir))
  }
}

/// Image options shared by `vm image` and `vm start`.
struct ImageOptions: ParsableArguments {
  @Option(name: .long, help: ArgumentHelp("Debian cloud kernel: \(GuestKernel.nameHelp)."))
  var kernel = "6.1"
  @Option(
    name: .long, help: "Workload: web (static site, busybox httpd) or olap (sqlite3 over CGI).")
  var workload = "web"
  @Option(name: .long, help: "Size of the OLAP database in MiB.")
  var olapSize = 200
  @Option(name: .long, help: "Size of the web site in MiB (files requested with Zipf popularity).")
  var siteSize = SiteGenerator.defaultSiteMiB
  @Option(
    name: .long,
    help: "The static agent binary to install in the guest (default: the one host/setup.sh built).")
  var agent: String?
  @Flag(name: .long, help: "A parent without the guest agent (no hints: host analysis only).")
  var noAgent = false
  @Flag(
    name: .long,
    help: "A virtio-balloon with free page reporting: the guest returns free 2 MiB blocks, which leave the RAM file.")
  var freePageReporting = false

  func validate() throws {
    if noAgent && agent != nil { throw ValidationError("--agent and --no-agent exclude each other") }
  }

  func startOptions() throws -> StartOptions {
    var o = StartOptions()
    o.kernelSeries = kernel
    o.workload = try Workload.parse(workload)
    o.olapMiB = olapSize
    o.siteMiB = siteSize
    o.freePageReporting = freePageReporting
    o.agent = noAgent ? nil : try agent ?? Self.installedAgent()
    return o
  }

  /// The agent host/setup.sh built: $KSCOPE_AGENT_BINARY, or <cache>/agent/kscope-agent.
  static func installedAgent() throws -> String {
    let env = ProcessInfo.processInfo.environment
    if let p = env["KSCOPE_AGENT_BINARY"], !p.isEmpty { return p }
    let path = GuestKernel.kscopeCache() + "/agent/kscope-agent"
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw CommandFailure("the guest agent is not built (\(path)): run host/setup.sh, or pass --no-agent")
    }
    // The link's target: the image copies the file itself.
    return try EngineSpec.canonical(path)
  }
}

/// Runs a library call and turns its errors into one-line command failures.
func vmCall<T>(_ body: () throws -> T) throws -> T {
  do { return try body() } catch let e as VMError {
    throw CommandFailure(e.description)
  } catch let e as CommandFailure {
    throw e
  } catch {
    // A Foundation error (a file that cannot be written...): its path and reason in one line,
    // never the NSCocoaErrorDomain dump.
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else {
      throw CommandFailure("\(error)")
    }
    let path = (ns.userInfo[NSFilePathErrorKey] as? String).map { "\($0): " } ?? ""
    let reason = (ns.userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription ?? ns.localizedDescription
    throw CommandFailure(path + reason)
  }
}

func logStderr(_ s: String) { FileHandle.standardError.write(Data("kscope: \(s)\n".utf8)) }

struct VMImageCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "image", abstract: "Build (or find in the cache) a guest image.",
    discussion: """
      An image is an initramfs (busybox, the init script from guest-module/image, the kernel's \
      virtio modules, the workload's programs, optionally the agent) plus a read-only ext4 data \
      disk with the workload's files. Images are cached by content under <state>/images/<key>/.
      """)
  @OptionGroup var image: ImageOptions
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let progress = ProgressLine("image", interval: 0)
    let img = try vmCall { try state.manager.buildImage(try image.startOptions(), log: progress.update) }
    progress.finish()
    if output.json {
      try printJSON([
        "key": img.key, "directory": img.directory, "initramfs": img.initramfs,
        "data_disk": img.dataDisk, "kernel": img.kernel.release, "workload": img.workload.rawValue,
      ])
    } else {
      print("\(img.key) \(img.directory) (kernel \(img.kernel.release), \(img.workload.rawValue))")
    }
  }
}

struct VMStartCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "start", abstract: "Boot a parent VM and wait until its workload answers.")
  @Argument(help: "VM name (letters, digits, - and _).") var name: String
  @Option(name: .long, help: "Guest RAM, e.g. 512M or 1G.") var memory = "512M"
  @Option(name: .long, help: "Seconds to wait for the workload to answer.") var timeout = 180.0
  @OptionGroup var image: ImageOptions
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let t = Date()
    let progress = ProgressLine(name, interval: 0)
    let st = try vmCall {
      var o = try image.startOptions()
      o.memory = try parseMemorySize(memory)
      o.bootTimeout = timeout
      return try state.manager.start(name: name, options: o, log: progress.update)
    }
    progress.finish()
    printStatus(st, seconds: Date().timeIntervalSince(t), json: output.json)
  }
}

func printStatus(_ st: VMStatus, seconds: Double?, json: Bool) {
  if json {
    var d = st.json
    if let seconds { d["seconds"] = (seconds * 1000).rounded() / 1000 }
    try? printJSON(d)
  } else {
    let took = seconds.map { String(format: " in %.1f s", $0) } ?? ""
    print(
      "\(st.name) \(st.state)\(took): \(st.workload) at http://127.0.0.1:\(st.hostPort)/ (pid \(st.pid.map(String.init) ?? "-"), kernel \(st.kernelRelease))"
    )
  }
}

struct VMListCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list", abstract: "List the VMs of the state directory.")
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let vms = state.manager.list()
    if output.json {
      try printJSON(["vms": vms.map(\.json)])
      return
    }
    if vms.isEmpty { print("no VMs in \(state.manager.stateDir)") }
    if !vms.isEmpty { print("NAME\tSTATE\tPID\tHTTP\tWORKLOAD\tMEMORY\tKERNEL\tCLONE OF") }
    for v in vms {
      let mib = v.memoryBytes >> 20
      print(
        "\(v.name)\t\(v.state)\t\(v.pid.map(String.init) ?? "-")\t127.0.0.1:\(v.hostPort)\t\(v.workload)\t\(mib)M\t\(v.kernelRelease)\t\(v.clonedFrom ?? "-")"
      )
    }
  }
}

struct VMStopCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stop", abstract: "Stop a VM and remove its state (RAM file, sockets, logs).")
  @Argument(help: "VM name.") var name: String
  @Option(
    help: """
      For a lazy clone: write the frames it missed on, in order, to this trace file once it has \
      stopped. From an on-demand clone that was its engine's first, that is its first-touch \
      order: a working set for `vm clone --lazy --policy working-set --working-set FILE`.
      """)
  var workingSet: String?
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let m = state.manager
    // Where the engine writes this clone's trace, known before the record goes with the VM.
    var trace: String?
    if workingSet != nil {
      let rec = try vmCall { try m.record(name) }
      guard let dir = rec.config.ramBacking?.engineDirectory, let pid = try vmCall({ try m.recordedPid(name) })
      else { throw CommandFailure("\(name) is not a running lazy clone: no engine records its misses") }
      trace = EngineDirectory(dir).firstTouchTrace(pid: pid)
    }
    try vmCall { try m.stop(name: name) }
    if let trace, let workingSet {
      // The engine writes it within a tenth of a second of the clone's hand-off socket closing.
      let deadline = MonotonicClock.nanoseconds() + 5_000_000_000
      while !Files.exists(trace) && MonotonicClock.nanoseconds() < deadline {
        HostProcess.sleep(microseconds: 50_000)
      }
      let bytes: [UInt8]
      do { bytes = try Files.read(trace, limit: 1 << 30) } catch {
        throw CommandFailure("the engine wrote no first-touch trace for \(name) within 5 s (\(error.description))")
      }
      do { try Files.writeAtomically(bytes, to: workingSet) } catch { throw CommandFailure(error.description) }
    }
    if output.json {
      var d: [String: Any] = ["name": name, "stopped": true]
      if let workingSet { d["working_set"] = workingSet }
      try printJSON(d)
    }
  }
}

struct VMSnapshotCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "snapshot", abstract: "Pause a VM and save RAM, hint region and device state.",
    discussion: """
      Writes DIR/ram (sparse), DIR/hints, DIR/device.state (QEMU migration stream without RAM, \
      x-ignore-shared) and DIR/manifest.json (kernel release/version/build-id, RAM size and \
      guest-physical layout, QEMU command line, timestamps). The parent stays paused unless \
      --resume is given. Then it colors the snapshot (host analysis merged with the agent's \
      hints, as 'kscope color' does) into DIR/map.kcm, the map lazy clones are driven by; \
      --no-color skips that.
      """)
  @Argument(help: "VM name.") var name: String
  @Option(name: .shortAndLong, help: "Snapshot directory (created; must be empty).") var output:
    String
  @Flag(name: .long, help: "Resume the parent after the snapshot.") var resume = false
  @Flag(name: .long, help: "Do not color the snapshot (no DIR/map.kcm).") var noColor = false
  @OptionGroup var state: StateOptions
  @OptionGroup var format: OutputOptions

  func run() throws {
    let t = Date()
    let progress = ProgressLine("snapshot of \(name)", interval: 5)
    let m = try vmCall {
      try state.manager.snapshot(name: name, to: output, resume: resume) { done, total in
        progress.update("RAM \(done >> 20) of \(total >> 20) MiB copied")
      }
    }
    progress.finish()
    let secs = Date().timeIntervalSince(t)
    // The snapshot's own map: what `vm clone --lazy` reads by default.
    var colored: [String: Any]? = nil
    if !noColor {
      let c0 = Date()
      progress.update("coloring the snapshot")
      let result: ColoringResult
      do {
        result = try Coloring.color(
          try ColoringInput.open(output), layoutProvider: KernelLayouts(),
          options: ColoringOptions(created: Int64(c0.timeIntervalSince1970)))
      } catch {
        throw CommandFailure("snapshot written to \(output), but coloring it failed: \(error)")
      }
      let bytes = try ColorMapFile.write(result.map, to: output + "/map.kcm")
      colored = [
        "map": output + "/map.kcm", "bytes": bytes, "seconds": (Date().timeIntervalSince(c0) * 1000).rounded() / 1000,
        "layout": result.layoutOrigin, "hints_used": result.analysis.hints != nil,
      ]
    }
    if format.json {
      var d: [String: Any] = [
        "directory": output, "seconds": (secs * 1000).rounded() / 1000, "ram_size": m.ramSize,
        "ram_bytes_copied": m.ramBytesCopied, "kernel": m.kernel.release,
        "build_id": m.kernel.buildID,
      ]
      if let colored { d["color_map"] = colored }
      try printJSON(d)
    } else {
      print(
        String(
          format: "snapshot of %@ in %@ in %.2f s (%llu MiB of RAM written)", name, output, secs,
          m.ramBytesCopied >> 20))
      if let colored {
        print("color map \(colored["map"]!) (\(colored["hints_used"] as? Bool == true ? "host analysis + the agent's hints" : "host analysis"), \(colored["seconds"]!) s)")
      }
    }
  }
}

struct VMCloneCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clone", abstract: "Start a clone of a snapshot: eager (full RAM copy), template, or lazy.",
    discussion: """
      Eager (the default) copies the snapshot's RAM. --template maps the snapshot's RAM file \
      privately (no engine: pages come from the host's page cache, writes stay the clone's own). \
      --lazy maps the clone engine's host cache file privately: QEMU starts with the hand-off \
      shim (host/setup.sh builds it), which gives the mapping's userfaultfd to the engine for \
      this snapshot, policy and source (started if none serves yet; clones of one snapshot \
      share it and its cache file). The policy reads the snapshot's map.kcm (written by 'vm \
      snapshot') unless --map names another. The timings go from the request to the vCPUs \
      running and to the workload's first answer.
      """)
  @Argument(help: "Snapshot directory.") var snapshot: String
  @Option(name: .long, help: "Name of the clone.") var name: String
  @Flag(name: .long, help: "Lazy clone: RAM served by the clone engine.") var lazy = false
  @Flag(name: .long, help: "Template clone: the snapshot's RAM file mapped privately.") var template = false
  @Option(name: .long, help: "Lazy clones' fetch policy: \(PolicyName.all.joined(separator: ", ")).")
  var policy = "kaleidoscope"
  @Option(name: .long, help: "The parent's color map (default: the snapshot's map.kcm).") var map: String?
  @Option(name: .long, help: "A recorded working set (working-set policies).") var workingSet: String?
  @Flag(name: .long, help: "Fetch free frames too (guests that poison or zero pages on free).")
  var fetchFree = false
  @Option(name: .long, help: "Take pages from 'kscope serve' (nbd://HOST:PORT/) instead of the snapshot.")
  var from: String?
  @Option(name: .long, help: "tmpfs directory for the engine's files.") var cacheDir = "/dev/shm"
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func validate() throws {
    if lazy && template { throw ValidationError("--lazy and --template exclude each other") }
    if !lazy && (from != nil || map != nil || workingSet != nil || fetchFree) {
      throw ValidationError("--map, --from, --working-set and --fetch-free need --lazy")
    }
  }

  func run() throws {
    let t = Date()
    let progress = ProgressLine("clone \(name)", interval: 5)
    var memory = CloneMemory.copy
    var useLock: LockFile?
    defer { useLock?.release() }
    if template { memory = .template }
    if lazy {
      var args = ["--policy", policy]
      if let workingSet { args += ["--working-set", workingSet] }
      if fetchFree { args.append("--fetch-free") }
      let options = try PolicyOptions.parse(args)
      let spec = try EngineSpec(
        snapshot: snapshot, map: map ?? defaultMap(snapshot), policy: options, from: from, cacheRoot: cacheDir)
      let shim = try vmCall { try LazyRAM.installedShim() }
      let (dir, lock) = try spec.ensureRunning(progress: progress)
      useLock = lock
      memory = .lazy(
        LazyRAM(
          cacheFile: dir.cacheFile, socket: dir.socket, holeFile: dir.holeFile, shim: shim,
          engineDirectory: dir.path, policy: policy))
    }
    let engineSeconds = Date().timeIntervalSince(t)
    var st = try vmCall {
      try state.manager.clone(snapshot: snapshot, name: name, memory: memory) { done, total in
        progress.update("RAM \(done >> 20) of \(total >> 20) MiB copied")
      }
    }
    progress.finish()
    if lazy { st.timings.insert(("engine", engineSeconds), at: 0) }
    printStatus(st, seconds: Date().timeIntervalSince(t), json: output.json)
  }

  /// The snapshot's own map (written by `vm snapshot`), if it has one and it is a regular file
  /// inside the snapshot directory.
  func defaultMap(_ snapshot: String) -> String? {
    let path = snapshot + "/map.kcm"
    guard Files.status(path)?.kind == .regular else { return nil }
    return path
  }
}

struct VMStatsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stats",
    abstract: "A clone's RAM: how it is provided, what its engine served, what it costs the host.",
    discussion: """
      For a lazy clone, the engine's figures for this clone (demand faults, zero-filled holes, \
      engine-side service latency) and the engine's totals (pages fetched, cache file resident), \
      while the clone runs and after it ended. For every running VM, its RAM mapping's resident, \
      proportional and private memory (/proc/PID/smaps).
      """)
  @Argument(help: "VM name.") var name: String
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let m = state.manager
    let rec = try vmCall { try m.record(name) }
    let pid = try vmCall { try m.recordedPid(name) }
    let usage = try vmCall { try m.ramUsage(name) }
    let mode = rec.clonedFrom == nil ? "own" : (rec.config.ramBacking?.mode ?? "copy")
    var engine: EngineStats?
    if let dir = rec.config.ramBacking?.engineDirectory {
      do { engine = try EngineStats.read(EngineDirectory(dir).statsFile) } catch {
        throw CommandFailure(error.description)
      }
    }
    let client = engine.flatMap { e in pid.flatMap { e.client(pid: $0) } }
    if output.json {
      var d: [String: Any] = ["name": name, "ram": mode, "running": usage != nil]
      if let pid { d["pid"] = Int(pid) }
      if let policy = rec.config.ramBacking?.policy { d["policy"] = policy }
      if let usage { d["host_memory"] = usage.json }
      if let e = engine {
        d["engine"] = [
          "pid": Int(e.pid), "state": e.state, "frames": e.frames, "holes": e.holes,
          "prepared_pages": e.preparedPages, "pages_fetched": e.pagesFetched,
          "cache_resident_pages": e.cacheResidentPages, "queued_frames": e.queuedFrames,
          "clients": e.clients.count, "errors": e.errors,
        ] as [String: Any]
      }
      if let c = client {
        d["clone"] = [
          "connected": c.connected, "seconds": c.seconds, "demand_faults": c.demandFaults,
          "zero_filled": c.zeroFilled, "refetched": c.refetched,
          "fault_latency_us": [
            "count": c.faultLatencyUs.count, "p50": c.faultLatencyUs.p50,
            "p99": c.faultLatencyUs.p99, "max": c.faultLatencyUs.max,
          ],
        ] as [String: Any]
      }
      try printJSON(d)
      return
    }
    print("\(name): RAM \(mode)\(rec.config.ramBacking?.policy.map { ", policy \($0)" } ?? ""), QEMU pid \(pid.map(String.init) ?? "-") \(usage == nil ? "(not running)" : "(running)")")
    if let usage {
      print("host memory   RAM mapping resident \(usage.rssKiB >> 10) MiB, proportional \(usage.pssKiB >> 10) MiB, copied on write \(usage.anonymousKiB >> 10) MiB")
    }
    if let e = engine {
      print("engine        pid \(e.pid) \(e.state); \(e.pagesFetched) pages fetched (\(e.preparedPages) before resume), cache \(e.cacheResidentPages) pages resident, \(e.holes) holes, \(e.clients.count) clone(s)")
    }
    if let c = client {
      print(String(format: "this clone    %llu demand faults (engine-side µs p50 %.1f p99 %.1f max %.1f), %llu holes zero-filled, %@ for %.1f s",
        c.demandFaults, c.faultLatencyUs.p50, c.faultLatencyUs.p99, c.faultLatencyUs.max, c.zeroFilled,
        c.connected ? "connected" : "gone", c.seconds))
    } else if engine != nil {
      print("this clone    not among the engine's clients (it never handed its RAM over)")
    }
  }
}

struct VMResumeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "resume",
    abstract: "Resume a paused VM (after vm snapshot without --resume, or a killed snapshot).")
  @Argument(help: "VM name.") var name: String
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    try vmCall { try state.manager.resume(name: name) }
    let st = try vmCall { try state.manager.status(name) }
    printStatus(st, seconds: nil, json: output.json)
  }
}

struct VMExecCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "exec", abstract: "Run a shell command in a VM's guest (control serial port).")
  @Argument(help: "VM name.") var name: String
  @Argument(help: "The command (run by the guest's sh).") var command: String
  @Option(name: .long, help: "Seconds to wait for the command.") var timeout = 60.0
  @OptionGroup var state: StateOptions
  @OptionGroup var format: OutputOptions

  func run() throws {
    let r = try vmCall { try state.manager.exec(name: name, command: command, timeout: timeout) }
    if format.json {
      // The exit status is in the object; the command still exits with it.
      try printJSON(["name": name, "status": r.status, "output": String(decoding: r.output, as: UTF8.self)])
    } else {
      FileHandle.standardOutput.write(r.output)
    }
    if r.status != 0 { throw ExitCode(Int32(clamping: r.status)) }
  }
}
