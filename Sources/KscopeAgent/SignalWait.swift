#if canImport(Glibc)
  import Glibc
#endif

/// The agent's signals, without handlers: they are blocked and collected with sigtimedwait,
/// so a signal arriving just before a sleep is never lost (no flag/handler race).
/// SIGUSR1 asks for a refresh now; SIGTERM, SIGINT and SIGHUP stop the agent.
public enum SignalWait {
  public enum Event: Sendable { case timeout, refresh, stop }

  static func set() -> sigset_t {
    var s = sigset_t()
    sigemptyset(&s)
    for sig in [SIGUSR1, SIGTERM, SIGINT, SIGHUP] { sigaddset(&s, sig) }
    return s
  }

  /// Blocks the agent's signals (call before anything else, while single-threaded).
  public static func block() {
    var s = set()
    sigprocmask(SIG_BLOCK, &s, nil)
  }

  /// Waits up to `nanoseconds` for one of the agent's signals.
  public static func wait(nanoseconds: UInt64) -> Event {
    var s = set()
    var ts = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var info = siginfo_t()
    let r = sigtimedwait(&s, &info, &ts)
    switch r {
    case SIGUSR1: return .refresh
    case SIGTERM, SIGINT, SIGHUP: return .stop
    default: return .timeout  // EAGAIN (timed out) or EINTR (another signal)
    }
  }
}
