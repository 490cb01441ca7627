import Foundation

/// Runs host tools (cpio, mke2fs, sqlite3, qemu, busybox) as child processes.
enum ProcessRunner {
  /// Runs `argv` to completion and returns its stdout; stderr goes to a temporary file whose tail
  /// is part of the error when the tool fails.
  @discardableResult
  static func run(
    _ argv: [String], input: Data? = nil, cwd: String? = nil, environment: [String: String]? = nil,
    stdoutFile: String? = nil
  ) throws -> Data {
    let p = Process()
    let tool = try which(argv[0])
    // The tool dies with kscope (PR_SET_PDEATHSIG through util-linux's setpriv): a killed image
    // build must not leave sqlite3 filling /dev/shm behind it.
    if let setpriv = try? which("setpriv") {
      p.executableURL = URL(fileURLWithPath: setpriv)
      p.arguments = ["--pdeathsig", "KILL", "--", tool] + argv.dropFirst()
    } else {
      p.executableURL = URL(fileURLWithPath: tool)
      p.arguments = Array(argv.dropFirst())
    }
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    if let environment {
      p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let errPath = NSTemporaryDirectory() + "kscope-err-\(UUID().uuidString)"
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errPath) }
    p.standardError = FileHandle(forWritingAtPath: errPath)
    let outPipe = Pipe()
    if let stdoutFile {
      _ = FileManager.default.createFile(atPath: stdoutFile, contents: nil)
      p.standardOutput = FileHandle(forWritingAtPath: stdoutFile)
    } else {
      p.standardOutput = outPipe
    }
    let inPipe = Pipe()
    p.standardInput = input == nil ? FileHandle.nullDevice : inPipe
    try p.run()
    if let input {
      // Feed stdin from another thread so a tool that writes a lot before reading cannot
      // deadlock against us.
      let writer = inPipe.fileHandleForWriting
      let t = Thread {
        writer.write(input)
        try? writer.close()
      }
      t.start()
    }
    let out = stdoutFile == nil ? outPipe.fileHandleForReading.readDataToEndOfFile() : Data()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
      let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
      throw VMError.processFailed(
        command: argv.prefix(2).joined(separator: " "), status: p.terminationStatus,
        output: err.isEmpty ? String(decoding: out.suffix(400), as: UTF8.self) : err)
    }
    return out
  }

  /// The absolute path of a tool, searched in PATH plus the sbin directories (mke2fs lives in
  /// /usr/sbin, which a non-login PATH may lack).
  static func which(_ tool: String) throws -> String {
    if tool.hasPrefix("/") { return tool }
    let path =
      (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
    for dir in path.split(separator: ":") {
      let candidate = "\(dir)/\(tool)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw VMError.missingPrerequisite("\(tool) is not installed (run host/setup.sh)")
  }
}

/// Runs `executable` with `arguments` to its end and parses its standard output as one JSON
/// object (kscope's own commands with --json, as the evaluations and benchmarks drive them);
/// nil if it failed. Its standard error is the caller's (their progress lines show).
public func jsonObjectOfCommand(_ executable: String, _ arguments: [String]) throws -> [String: Any]? {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: executable)
  p.arguments = arguments
  let pipe = Pipe()
  p.standardOutput = pipe
  try p.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  guard p.terminationStatus == 0 else { return nil }
  return try JSONSerialization.jsonObject(with: data) as? [String: Any]
}
