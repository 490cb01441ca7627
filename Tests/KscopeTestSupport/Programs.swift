import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A test's own failure, with the line to show.
public struct TestFailure: Error, CustomStringConvertible {
  public let description: String
  public init(_ d: String) { description = d }
}

/// What a program did: its exit status (128 + the signal when a signal ended it, as a shell
/// says), standard output and standard error.
public struct ProgramRun: Sendable {
  public var status: Int32
  public var stdout: String
  public var stderr: String
  /// Whether it was killed at the deadline.
  public var timedOut = false
  public init(status: Int32, stdout: String, stderr: String, timedOut: Bool = false) {
    self.status = status
    self.stdout = stdout
    self.stderr = stderr
    self.timedOut = timedOut
  }
}

/// An executable of this package built beside the test bundle (`kscope`, `kscope-agent`,
/// `kscope-bench`).
public func builtExecutable(_ name: String) throws -> String {
  let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  for candidate in [dir, dir.deletingLastPathComponent()] {
    let p = candidate.appendingPathComponent(name).path
    if FileManager.default.isExecutableFile(atPath: p) { return p }
  }
  throw TestFailure("\(name) is not built beside the tests in \(dir.path); run swift build first")
}

public func kscopeBinary() throws -> String { try builtExecutable("kscope") }

/// Runs kscope with arguments (see `runProgram`).
public func runKscope(
  _ args: [String], timeout: Double? = nil, environment: [String: String] = [:]
) throws -> ProgramRun {
  try runProgram(try kscopeBinary(), args, timeout: timeout, environment: environment)
}

/// Runs a program to its exit (posix_spawn and waitpid), killed after `timeout` seconds if
/// given (a hang is a failure, not a stuck suite). Standard input is /dev/null; output goes
/// through temporary files, not pipes, and Foundation's Process is not used: `kscope vm start`
/// leaves a daemonized QEMU behind that inherits descriptors, and either would wait for it.
/// `environment` adds to (or overrides) this process's variables for the child.
public func runProgram(
  _ path: String, _ args: [String], timeout: Double? = nil, environment: [String: String] = [:]
) throws -> ProgramRun {
  let dir = NSTemporaryDirectory() + "kscope-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: dir) }
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 1, dir + "/out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
  posix_spawn_file_actions_addopen(&actions, 2, dir + "/err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
  let argv = ([path] + args).map { strdup($0) } + [nil]
  defer { for a in argv { free(a) } }
  let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
  defer { for e in envp { free(e) } }
  var pid: pid_t = 0
  let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
  guard rc == 0 else { throw TestFailure("cannot run \(path): \(String(cString: strerror(rc)))") }
  var status: Int32 = 0
  var timedOut = false
  if let timeout {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while true {
      let r = waitpid(pid, &status, WNOHANG)
      if r == pid || (r == -1 && errno != EINTR) { break }
      if Date() >= deadline {
        timedOut = true
        kill(pid, SIGKILL)
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        break
      }
      usleep(10_000)
    }
  } else {
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
  }
  let exited = status & 0x7F == 0
  let o = FileManager.default.contents(atPath: dir + "/out") ?? Data()
  let e = FileManager.default.contents(atPath: dir + "/err") ?? Data()
  return ProgramRun(
    status: exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F), stdout: String(decoding: o, as: UTF8.self),
    stderr: String(decoding: e, as: UTF8.self), timedOut: timedOut)
}

/// A JSON object printed by a command.
public func jsonObject(_ text: String) throws -> [String: Any] {
  guard let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
    throw TestFailure("not a JSON object: \(text.prefix(200))")
  }
  return o
}
