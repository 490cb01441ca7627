import ArgumentParser
import Foundation
import KscopeCore
import KscopeOS
import KscopeVM

/// `kscope serve`: a snapshot's RAM as a read-only NBD export (nbdkit), for remote clones.
struct ServeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Export a snapshot's RAM read-only over NBD (nbdkit) and print its nbd:// URI.",
    discussion: """
      Runs nbdkit's file plugin on the snapshot's RAM file, read-only, many clients at once, and \
      stays in the foreground until interrupted (nbdkit exits with it). --delay and --rate put \
      nbdkit's delay and rate filters in front, to emulate a real link; the URI line says so.

        kscope serve /dev/shm/snap1 --listen 127.0.0.1 --port 10809 --rate 1G --delay 0.1
        kscope clone replay --snapshot /dev/shm/snap1 --from nbd://127.0.0.1:10809/ ...
      """)

  @Argument(help: "The snapshot directory.") var snapshot: String
  @Option(help: "Address to listen on (an IPv4 or IPv6 literal).") var listen = "127.0.0.1"
  @Option(help: "TCP port.") var port = 10809
  @Option(help: "Extra latency per read, in ms (nbdkit's delay filter; a round trip is two of these for a request and its reply).")
  var delay: Double?
  @Option(help: "Bandwidth limit in bits per second, e.g. 1G or 100M (nbdkit's rate filter).")
  var rate: String?
  @Option(help: "nbdkit threads per connection (1: the thread that reads a request answers it, with no hand-off: the fastest miss; an engine opens several connections for bulk prefetch).")
  var threads = 1
  @OptionGroup var out: OutputOptions

  func validate() throws {
    guard (1...65535).contains(port) else { throw ValidationError("--port must be 1...65535") }
    guard listen.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }), !listen.isEmpty else {
      throw ValidationError("--listen takes an IP address literal")
    }
    if let delay, !(0...10_000).contains(delay) { throw ValidationError("--delay must be 0...10000 ms") }
    guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1...64") }
    if let rate, rate.isEmpty || !rate.allSatisfy({ $0.isNumber || "KMG".contains($0) }) {
      throw ValidationError("--rate takes bits per second, e.g. 1G or 500M")
    }
  }

  func run() throws {
    // Whoever started us may have blocked the stop signals (a spawned child inherits its
    // parent thread's mask): unblock them, for us and for nbdkit, so a stop always stops both.
    var stops = sigset_t()
    sigemptyset(&stops)
    for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&stops, s) }
    pthread_sigmask(SIG_UNBLOCK, &stops, nil)
    let snap = try openSnapshot(snapshot)
    let manifest = snap.manifest
    // nbdkit opens the very file checked here, through our descriptor (it lives as long as we do).
    let ram = "/proc/\(ProcessUsage.id)/fd/\(snap.ram.fd)"
    guard let nbdkit = ["/usr/sbin/nbdkit", "/usr/bin/nbdkit"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
      throw CommandFailure("nbdkit is not installed (host/setup.sh installs it)")
    }
    // argv only, never a shell: the path is one argument.
    var args = [
      "--foreground", "--readonly", "--exit-with-parent", "--threads", String(threads), "--ipaddr", listen, "--port", String(port),
    ]
    if delay != nil { args.append("--filter=delay") }
    if rate != nil { args.append("--filter=rate") }
    args += ["file", "file=" + ram]
    if let delay { args.append("delay-read=\(delay)ms") }
    if let rate { args.append("rate=\(rate)") }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: nbdkit)
    p.arguments = args
    try p.run()
    // Stop nbdkit with us, however we are stopped.
    HostProcess.forwardTermination(to: p.processIdentifier)
    let host = listen.contains(":") ? "[\(listen)]" : listen
    let uri = "nbd://\(host):\(port)/"
    guard waitListening(host: listen, port: port, process: p) else {
      p.terminate()
      throw CommandFailure("nbdkit did not start listening on \(listen):\(port) (port in use?)")
    }
    var link = "no link emulation"
    if delay != nil || rate != nil {
      link = "emulated link: " + [delay.map { "+\($0) ms per read" }, rate.map { "\($0)bit/s" }].compactMap { $0 }.joined(separator: ", ")
    }
    if out.json {
      try printJSON(["uri": uri, "pid": Int(p.processIdentifier), "ram": snap.ram.path, "link": link])
      // Flushed now: whoever started us reads the URI while we keep running.
      fflush(nil)  // every output stream, stdout included
    } else {
      // Written unbuffered: whoever started us reads the URI while we keep running.
      FileHandle.standardOutput.write(Data("\(uri)  (\(manifest.ramSize >> 20) MiB, read-only; \(link); Ctrl-C stops it)\n".utf8))
    }
    p.waitUntilExit()
    if p.terminationStatus != 0 { throw CommandFailure("nbdkit exited with status \(p.terminationStatus)") }
  }

  /// Polls until a TCP connect succeeds (5 s at most) or nbdkit has exited.
  func waitListening(host: String, port: Int, process: Process) -> Bool {
    for _ in 0..<100 {
      if !process.isRunning { return false }
      if StreamSocket.tcpConnects(host: host, port: port) { return true }
      HostProcess.sleep(microseconds: 50_000)
    }
    return false
  }
}
