import ArgumentParser
import Foundation
import KscopeHost
import KscopeCore
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
      VMSnapshotCommand.self, VMCloneCommand.self, VMExecCommand.self, VMResumeCommand.self,
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
  @Option(name: .long, help: "A static-stdlib kscope binary to install in the guest as its agent.")
  var agent: String?

  func startOptions() throws -> StartOptions {
    var o = StartOptions()
    o.kernelSeries = kernel
    o.workload = try Workload.parse(workload)
    o.olapMiB = olapSize
    o.agent = agent
    return o
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
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    try vmCall { try state.manager.stop(name: name) }
    if output.json { try printJSON(["name": name, "stopped": true]) }
  }
}

struct VMSnapshotCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "snapshot", abstract: "Pause a VM and save RAM, hint region and device state.",
    discussion: """
      Writes DIR/ram (sparse), DIR/hints, DIR/device.state (QEMU migration stream without RAM, \
      x-ignore-shared) and DIR/manifest.json (kernel release/version/build-id, RAM size and \
      guest-physical layout, QEMU command line, timestamps). The parent stays paused unless \
      --resume is given.
      """)
  @Argument(help: "VM name.") var name: String
  @Option(name: .shortAndLong, help: "Snapshot directory (created; must be empty).") var output:
    String
  @Flag(name: .long, help: "Resume the parent after the snapshot.") var resume = false
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
    if format.json {
      try printJSON([
        "directory": output, "seconds": (secs * 1000).rounded() / 1000, "ram_size": m.ramSize,
        "ram_bytes_copied": m.ramBytesCopied, "kernel": m.kernel.release,
        "build_id": m.kernel.buildID,
      ])
    } else {
      print(
        String(
          format: "snapshot of %@ in %@ in %.2f s (%llu MiB of RAM written)", name, output, secs,
          m.ramBytesCopied >> 20))
    }
  }
}

struct VMCloneCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clone", abstract: "Start an eager clone of a snapshot (full RAM copy).")
  @Argument(help: "Snapshot directory.") var snapshot: String
  @Option(name: .long, help: "Name of the clone.") var name: String
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let t = Date()
    let progress = ProgressLine("clone \(name)", interval: 5)
    let st = try vmCall {
      try state.manager.clone(snapshot: snapshot, name: name) { done, total in
        progress.update("RAM \(done >> 20) of \(total >> 20) MiB copied")
      }
    }
    progress.finish()
    printStatus(st, seconds: Date().timeIntervalSince(t), json: output.json)
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
