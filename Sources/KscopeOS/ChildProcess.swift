#if canImport(Glibc)
  import Glibc
#endif

/// A child process run to completion with what the kernel measured of it. posix_spawn + wait4
/// by hand: wait4 gives the child's own rusage (peak RSS, CPU), which swift-subprocess does not
/// report, and the benchmarks and the memory-bound tests need exactly that.
public struct ChildProcess: Sendable {
  /// Exit status (0...255), or nil when a signal ended the child.
  public var exitStatus: Int32?
  /// The signal that ended the child, if one did.
  public var signal: Int32?
  /// Wall time from spawn to reap.
  public var seconds: Double
  /// The child's peak resident set size (ru_maxrss), KiB. From `run`, at least this process's
  /// own RSS when it spawned the child: Linux carries the peak of the memory an exec leaves
  /// (ours, shared by posix_spawn's vfork) into the child's. `measured` has the exact figure.
  public var maxRSSKiB: Int
  public var userSeconds: Double
  public var systemSeconds: Double

  public var succeeded: Bool { exitStatus == 0 }

  /// Like `run`, but the peak RSS is the command's own: it runs under GNU time (Debian's
  /// `time`), whose small process forks and execs it, so nothing of ours is counted.
  public static func measured(
    _ argv: [String], output: String = "/dev/null", errorsToo: Bool = false
  )
    throws(FileError) -> ChildProcess
  {
    let report = "/tmp/.kscope-rss-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { unlink(report) }
    var child = try run(
      ["/usr/bin/time", "-q", "-f", "%M", "-o", report] + argv, output: output, errorsToo: errorsToo
    )
    let text = String(decoding: try Files.read(report, limit: 4096), as: UTF8.self)
    guard let kib = text.split(separator: "\n").last.flatMap({ Int($0) }) else {
      throw FileError(
        path: report, operation: "read", errno: EINVAL, detail: "no peak RSS from time: \(text)")
    }
    child.maxRSSKiB = kib
    return child
  }

  /// Runs `argv` (argv[0] a path) with this environment; its standard output goes to `output`
  /// (default /dev/null), and its standard error too when `errorsToo`, else to ours.
  public static func run(_ argv: [String], output: String = "/dev/null", errorsToo: Bool = false)
    throws(FileError)
    -> ChildProcess
  {
    guard let program = argv.first else {
      throw FileError(path: "", operation: "spawn", errno: EINVAL, detail: "empty command")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    if errorsToo { posix_spawn_file_actions_adddup2(&actions, 1, 2) }
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    let start = MonotonicClock.nanoseconds()
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, program, &actions, nil, &cArgs, environ)
    guard rc == 0 else { throw FileError(path: program, operation: "spawn", errno: rc) }
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 {
      guard errno == EINTR else { throw FileError(path: program, operation: "wait4", errno: errno) }
    }
    let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
    func cpu(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    // WIFEXITED / WEXITSTATUS / WTERMSIG spelled out (the C macros do not import).
    let exited = status & 0x7f == 0
    return ChildProcess(
      exitStatus: exited ? (status >> 8) & 0xff : nil, signal: exited ? nil : status & 0x7f,
      seconds: seconds, maxRSSKiB: usage.ru_maxrss, userSeconds: cpu(usage.ru_utime),
      systemSeconds: cpu(usage.ru_stime))
  }
}
