import Foundation

/// The result of a command run in the guest.
public struct ExecResult: Sendable {
  public var status: Int
  /// stdout and stderr of the command, interleaved, byte-exact.
  public var output: Data
  public var text: String { String(decoding: output, as: UTF8.self) }
}

/// The guest's control shell on its second serial port (/dev/ttyS1, a unix socket on the host:
/// `<vm dir>/control.sock`). The init script reads "<id> <base64 command>" lines, runs each with
/// `sh` (stdin /dev/null) and answers "@@kscope-begin <id>", the output in base64, and
/// "@@kscope-end <id> <status>". Commands run one at a time, as root, in the guest; a command
/// that must outlive the call (e.g. a process that has to stay alive until the host pauses the
/// VM) is started in the background by the command itself (`... > /tmp/log 2>&1 &`).
///
/// Loopback only: the socket is a file in the VM's directory; nothing listens on the network.
public enum GuestControl {
  public static let maxOutput = 96 << 20

  /// The control exchange as pure functions, for tests: the request line and the reply parser.
  public static func request(id: String, command: String) -> Data {
    Data("\(id) \(Data(command.utf8).base64EncodedString())\n".utf8)
  }

  /// Parses a complete reply for `id` out of `buffer`, or returns nil if it is not complete yet.
  /// Lines before the begin marker (stale output, a shell's noise) are ignored.
  public static func parseReply(_ buffer: Data, id: String) throws -> ExecResult? {
    let begin = Data("@@kscope-begin \(id)\n".utf8)
    let endPrefix = Data("@@kscope-end \(id) ".utf8)
    guard let b = buffer.range(of: begin),
      let e = buffer.range(of: endPrefix, in: b.upperBound..<buffer.endIndex),
      let nl = buffer[e.upperBound...].firstIndex(of: 0x0a)
    else { return nil }
    let statusText = String(decoding: buffer[e.upperBound..<nl], as: UTF8.self)
      .trimmingCharacters(in: .whitespaces)
    guard let status = Int(statusText) else {
      throw VMError.guest("bad exit status '\(statusText)' from the control shell")
    }
    let encoded = buffer[b.upperBound..<e.lowerBound]
    guard let output = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters) else {
      throw VMError.guest("the control shell's output is not valid base64")
    }
    return ExecResult(status: status, output: output)
  }

  /// Runs `command` in the guest of the VM whose control socket is `socketPath`.
  public static func exec(socketPath: String, command: String, timeout: Double = 60) throws
    -> ExecResult
  {
    let s = try SocketConnection.unix(path: socketPath)
    defer { s.close() }
    let id = String(UInt64.random(in: 1...UInt64.max), radix: 36)
    try s.write(request(id: id, command: command))
    let deadline = Date(timeIntervalSinceNow: timeout)
    var buffer = Data()
    while true {
      let chunk: Data
      do { chunk = try s.read(max: 1 << 16, deadline: deadline) } catch VMError.timeout {
        throw VMError.timeout("guest command did not finish within \(Int(timeout)) s")
      }
      if chunk.isEmpty { throw VMError.guest("control socket closed") }
      buffer.append(chunk)
      if buffer.count > maxOutput * 4 / 3 + 4096 {
        throw VMError.guest("guest command output over \(maxOutput) bytes")
      }
      if let r = try parseReply(buffer, id: id) { return r }
    }
  }
}

extension VMManager {
  /// Runs a shell command inside the named VM's guest (see `GuestControl`).
  public func exec(name: String, command: String, timeout: Double = 60) throws -> ExecResult {
    let rec = try record(name)
    guard livePid(rec.config) != nil else { throw VMError.guest("VM '\(name)' is not running") }
    return try GuestControl.exec(
      socketPath: rec.config.controlPath, command: command, timeout: timeout)
  }
}
