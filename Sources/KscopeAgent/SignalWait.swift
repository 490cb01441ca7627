import KscopeOS

/// The agent's signals, without handlers: they are blocked and collected with sigtimedwait,
/// so a signal arriving just before a sleep is never lost (no flag/handler race).
/// SIGUSR1 asks for a refresh now; SIGTERM, SIGINT and SIGHUP stop the agent.
public enum SignalWait {
  public enum Event: Sendable { case timeout, refresh, stop }

  static let signals = [Signals.user1, Signals.terminate, Signals.interrupt, Signals.hangUp]

  /// Blocks the agent's signals (call before anything else, while single-threaded).
  public static func block() { Signals.block(signals) }

  /// Waits up to `nanoseconds` for one of the agent's signals.
  public static func wait(nanoseconds: UInt64) -> Event {
    switch Signals.wait(for: signals, nanoseconds: nanoseconds) {
    case Signals.user1: return .refresh
    case Signals.terminate, Signals.interrupt, Signals.hangUp: return .stop
    default: return .timeout  // timed out, or another signal interrupted the wait
    }
  }
}
