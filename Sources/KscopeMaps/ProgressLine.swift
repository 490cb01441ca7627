import Foundation
import KscopeOS

/// Progress of a long step on stderr: on a terminal one line rewritten in place (carriage
/// return, then "erase to end of line" for what a longer earlier line left); otherwise (a log,
/// CI) a plain line at most every `interval` seconds, so logs stay short. stdout (results,
/// --json) is never touched.
public final class ProgressLine: @unchecked Sendable {
  private let label: String
  private let terminal: Bool
  private let interval: Double
  private let write: (String) -> Void
  private let now: () -> Double
  private var lastLine: Double? = nil
  private var shown = false
  private let lock = NSLock()

  public init(
    _ label: String, interval: Double = 10, terminal: Bool = SystemInfo.standardErrorIsTerminal,
    write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) },
    now: @escaping () -> Double = { Date().timeIntervalSinceReferenceDate }
  ) {
    self.label = label
    self.terminal = terminal
    self.interval = interval
    self.write = write
    self.now = now
  }

  public func update(_ text: String) {
    lock.lock()
    defer { lock.unlock() }
    if terminal {
      write("\r\(label): \(text)\u{1B}[K")
      shown = true
    } else if lastLine.map({ now() - $0 >= interval }) ?? true {
      write("kscope: \(label): \(text)\n")
      lastLine = now()
    }
  }

  /// Ends the progress: a terminal's line is erased, so the result prints on a clean line.
  public func finish() {
    lock.lock()
    defer { lock.unlock() }
    if terminal && shown { write("\r\u{1B}[K") }
    shown = false
  }
}
