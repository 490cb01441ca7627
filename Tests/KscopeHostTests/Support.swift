import Foundation
import Testing

/// A fresh temporary directory, removed by the caller with `cleanup`.
func makeTempDir() throws -> String {
  let path = NSTemporaryDirectory() + "kscope-test-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

func cleanup(_ dir: String) { try? FileManager.default.removeItem(atPath: dir) }

func writeU64s(_ values: [UInt64], to path: String) throws {
  var data = Data()
  for v in values { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
  try data.write(to: URL(fileURLWithPath: path))
}

/// The `kscope` executable built beside the test bundle.
func kscopeBinary() throws -> String {
  let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  for candidate in [dir, dir.deletingLastPathComponent()] {
    let p = candidate.appendingPathComponent("kscope").path
    if FileManager.default.isExecutableFile(atPath: p) { return p }
  }
  throw TestFailure("the kscope executable is not built beside the tests in \(dir.path); run swift build first")
}

struct TestFailure: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}

struct Run {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs kscope with arguments and captures its output.
func runKscope(_ args: [String]) throws -> Run {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: try kscopeBinary())
  p.arguments = args
  let out = Pipe()
  let err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  let o = out.fileHandleForReading.readDataToEndOfFile()
  let e = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return Run(
    status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
    stderr: String(decoding: e, as: UTF8.self))
}

func jsonObject(_ text: String) throws -> [String: Any] {
  guard let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
    throw TestFailure("not a JSON object: \(text.prefix(200))")
  }
  return o
}
