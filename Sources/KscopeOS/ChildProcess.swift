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

  /// How a child starts: where its output goes, what it inherits.
  public struct Start: Sendable {
    /// Its standard output (and standard error when `errorsToo`, else ours).
    public var output = "/dev/null"
    /// Append to `output` instead of truncating it.
    public var append = false
    public var errorsToo = false
    /// Standard input from /dev/null instead of ours.
    public var noInput = false
    /// Variables set (or replaced) in this process's environment for the child.
    public var environment: [String: String] = [:]
    /// A session of its own (setsid): it outlives us, and our terminal's signals miss it.
    public var newSession = false
    /// Nothing of ours but 0-2: a long-lived child must not hold a caller's pipe open.
    public var inheritNothing = false
    public init(
      output: String = "/dev/null", append: Bool = false, errorsToo: Bool = false, noInput: Bool = false,
      environment: [String: String] = [:], newSession: Bool = false, inheritNothing: Bool = false
    ) {
      self.output = output
      self.append = append
      self.errorsToo = errorsToo
      self.noInput = noInput
      self.environment = environment
      self.newSession = newSession
      self.inheritNothing = inheritNothing
    }
  }

  /// Starts `argv` (argv[0] a path) as `how` says; returns its pid (the caller waits, or not).
  /// The one posix_spawn of the package.
  public static func spawn(_ argv: [String], _ how: Start = Start()) throws(FileError) -> pid_t {
    guard let program = argv.first else {
      throw FileError(path: "", operation: "spawn", errno: EINVAL, detail: "empty command")
    }
    if how.inheritNothing { Descriptors.closeOnExecAbove(2) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if how.noInput { posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
    posix_spawn_file_actions_addopen(
      &actions, 1, how.output, O_WRONLY | O_CREAT | (how.append ? O_APPEND : O_TRUNC), 0o600)
    if how.errorsToo { posix_spawn_file_actions_adddup2(&actions, 1, 2) }
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // POSIX_SPAWN_SETSID (glibc, 0x80) is behind _GNU_SOURCE, which Swift does not define.
    if how.newSession { posix_spawnattr_setflags(&attr, 0x80) }
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var pid: pid_t = 0
    let rc: Int32
    if how.environment.isEmpty {
      rc = posix_spawn(&pid, program, &actions, &attr, &cArgs, environ)
    } else {
      // This process's environment, with `how.environment`'s names replaced.
      var entries: [String] = []
      var k = 0
      while let e = environ[k], k < 1 << 16 {
        let entry = String(cString: e)
        let name = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
        if how.environment[name] == nil { entries.append(entry) }
        k += 1
      }
      entries += how.environment.map { "\($0.key)=\($0.value)" }
      var cEnv: [UnsafeMutablePointer<CChar>?] = entries.map { strdup($0) } + [nil]
      defer { for p in cEnv { free(p) } }
      rc = posix_spawn(&pid, program, &actions, &attr, &cArgs, &cEnv)
    }
    guard rc == 0 else { throw FileError(path: program, operation: "spawn", errno: rc) }
    return pid
  }

  /// Waits for `pid` (EINTR retried) and returns what the kernel measured of it.
  public static func wait(_ pid: pid_t, program: String, since start: UInt64) throws(FileError) -> ChildProcess {
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

  /// Runs `argv` (argv[0] a path) to its end; by default its standard output goes to /dev/null
  /// and its standard error to ours.
  public static func run(_ argv: [String], _ how: Start = Start()) throws(FileError) -> ChildProcess {
    let start = MonotonicClock.nanoseconds()
    let pid = try spawn(argv, how)
    return try wait(pid, program: argv[0], since: start)
  }

  /// Runs `argv` with its standard output to `output` (default /dev/null), and its standard
  /// error too when `errorsToo`, else to ours.
  public static func run(_ argv: [String], output: String = "/dev/null", errorsToo: Bool = false)
    throws(FileError)
    -> ChildProcess
  {
    try run(argv, Start(output: output, errorsToo: errorsToo))
  }

  /// The exit status, or 128 + the signal that ended it (as a shell reports it).
  public var shellStatus: Int32 { exitStatus ?? 128 + (signal ?? 0) }
}
