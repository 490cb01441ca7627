import KscopeOS

/// Everything that can go wrong while building images and driving VMs. Each case's description is
/// the one-line message a user sees.
public enum VMError: Error, CustomStringConvertible, Equatable {
  /// A command-line value or a name is not acceptable.
  case invalidArgument(String)
  /// A host prerequisite (QEMU, busybox, a cached kernel) is not installed.
  case missingPrerequisite(String)
  /// A system call failed: what we were doing, the path or address, and errno.
  case system(operation: String, detail: String, errno: Int32)
  /// A child process (mke2fs, cpio, qemu...) failed.
  case processFailed(command: String, status: Int32, output: String)
  /// QMP protocol or command failure.
  case qmp(String)
  /// Something did not happen in time.
  case timeout(String)
  /// The guest did not come up; `consoleTail` is the end of its serial console log.
  case bootFailed(reason: String, consoleTail: String)
  /// A VM with this name does not exist, or already exists.
  case noSuchVM(String)
  case vmExists(String)
  /// A snapshot directory is incomplete or its manifest is damaged.
  case badSnapshot(String)
  /// The guest answered something we did not expect (HTTP, control channel).
  case guest(String)

  public var description: String {
    switch self {
    case .invalidArgument(let m): return m
    case .missingPrerequisite(let m): return m
    case .system(let op, let detail, let e):
      return "\(op) \(detail): \(Files.lastErrorText(e))"
    case .processFailed(let command, let status, let output):
      let last = output.split(separator: "\n").last.map(String.init) ?? ""
      return "\(command) exited with status \(status)\(last.isEmpty ? "" : ": " + last)"
    case .qmp(let m): return "QMP: \(m)"
    case .timeout(let m): return "timed out: \(m)"
    case .bootFailed(let reason, let tail):
      // Console lines end in CRLF; "\r\n" is one Character, so split on scalars.
      let lines = tail.unicodeScalars.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
        .map { String(String.UnicodeScalarView($0)) }.filter { !$0.isEmpty }
      let flat = lines.suffix(8).joined(separator: " | ")
      return "\(reason); console tail: \(flat.isEmpty ? "(empty)" : flat)"
    case .noSuchVM(let n): return "no VM named '\(n)'"
    case .vmExists(let n): return "a VM named '\(n)' is already running"
    case .badSnapshot(let m): return "bad snapshot: \(m)"
    case .guest(let m): return "guest: \(m)"
    }
  }
}
