#if canImport(Glibc)
  import Glibc
#endif

/// Signals: blocked and collected synchronously (no handlers, so no flag/handler race), sent
/// to other processes, and whether a process still lives.
public enum Signals {
  public static let terminate = SIGTERM
  public static let kill = SIGKILL
  public static let interrupt = SIGINT
  public static let hangUp = SIGHUP
  public static let user1 = SIGUSR1

  static func set(_ signals: [Int32]) -> sigset_t {
    var s = sigset_t()
    sigemptyset(&s)
    for sig in signals { sigaddset(&s, sig) }
    return s
  }

  /// Blocks `signals` for this thread and the threads it starts (call while single-threaded).
  public static func block(_ signals: [Int32]) {
    var s = set(signals)
    sigprocmask(SIG_BLOCK, &s, nil)
  }

  /// Waits up to `nanoseconds` for one of the (blocked) `signals`: the signal, or nil when the
  /// time passed or another signal interrupted the wait.
  public static func wait(for signals: [Int32], nanoseconds: UInt64) -> Int32? {
    var s = set(signals)
    var ts = timespec(
      tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var info = siginfo_t()
    let r = sigtimedwait(&s, &info, &ts)
    return r > 0 ? r : nil
  }

  /// Sends `signal` to `pid`; false when it could not be sent.
  @discardableResult
  public static func send(_ signal: Int32, to pid: Int32) -> Bool { Glibc.kill(pid, signal) == 0 }

  /// True if a process with this pid exists and has not exited (signal 0 probes without sending
  /// anything). A zombie counts as exited: a daemonized QEMU is reparented to PID 1, which may
  /// reap it late.
  public static func processExists(_ pid: Int32) -> Bool {
    guard Glibc.kill(pid, 0) == 0 || errno == EPERM else { return false }
    // /proc/PID/stat is "pid (comm) S ...": the state follows the last ')'.
    guard let stat = try? Files.read("/proc/\(pid)/stat", limit: 1 << 16),
      let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.endIndex
    else { return true }
    return stat[close + 2] != UInt8(ascii: "Z")
  }
}
