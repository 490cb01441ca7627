import Foundation
import Glibc
import KscopeCore
import KscopeSnapshot
import KscopeTestSupport
import Testing

@testable import KscopeEngine

/// `kscope serve`: a real nbdkit, supervised. The test starts the built `kscope` binary on a
/// small snapshot, reads the RAM back over NBD, checks the server it runs, and stops it.
@Suite(.serialized) struct ServeTests {
  /// A snapshot directory (as `kscope vm snapshot` writes one) whose 512 MiB sparse RAM holds
  /// `marker` at 1 MiB.
  static func snapshot(marker: [UInt8]) throws -> String {
    let dir = "/dev/shm/kscope-serve-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let manifest = SampleSnapshot.manifest()
    try manifest.encoded().write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    for (name, size) in [("ram", 512 << 20), ("hints", 4 << 20)] {
      _ = FileManager.default.createFile(atPath: dir + "/" + name, contents: nil)
      let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/" + name))
      try h.truncate(atOffset: UInt64(size))
      if name == "ram" {
        try h.seek(toOffset: 1 << 20)
        h.write(Data(marker))
      }
      try h.close()
    }
    try Data("QEVM".utf8).write(to: URL(fileURLWithPath: dir + "/device.state"))
    return dir
  }

  static func kscope() throws -> String {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [dir, dir.deletingLastPathComponent()] {
      let p = candidate.appendingPathComponent("kscope").path
      if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    throw EngineError("kscope is not built beside the tests: run swift build first")
  }

  /// The command line of a process, split at NULs.
  static func commandLine(_ pid: Int32) -> [String] {
    guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
    return d.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
  }

  @Test func serveExportsTheRAMThroughOneThreadPerConnectionAndStopsWithIt() throws {
    let marker = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
    let dir = try Self.snapshot(marker: marker)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let port = 21000 + Int(getpid() % 4000)
    let serve = Process()
    serve.executableURL = URL(fileURLWithPath: try Self.kscope())
    serve.arguments = ["serve", dir, "--port", String(port), "--json"]
    let out = Pipe()
    serve.standardOutput = out
    try serve.run()
    defer { if serve.isRunning { kill(serve.processIdentifier, SIGKILL) } }
    let line = out.fileHandleForReading.availableData
    let json = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any], "no JSON line from kscope serve")
    #expect(json["uri"] as? String == "nbd://127.0.0.1:\(port)/")
    let nbdkit = try #require(json["pid"] as? Int).description
    // A real nbdkit, read-only, one thread per connection (the fastest miss).
    let args = Self.commandLine(Int32(nbdkit)!)
    #expect(args.first?.hasSuffix("nbdkit") == true, "\(args)")
    #expect(args.contains("--readonly"))
    #expect(args.firstIndex(of: "--threads").map { args[$0 + 1] } == "1", "\(args)")
    // The RAM's bytes, over NBD, from two connections at once (closed again before the stop).
    do {
      let source = try NBDSource(uri: "nbd://127.0.0.1:\(port)/")
      #expect(source.size == 512 << 20)
      try source.openConnections(2)
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 4096)
      defer { buffer.deallocate() }
      try source.read(into: buffer, at: (1 << 20) - 4096)
      #expect(buffer[0..<4096].allSatisfy { $0 == 0 })
      #expect(Array(buffer[4096..<8192]) == marker)
    }
    // Stopped, it takes nbdkit with it: even though this test runner blocks SIGTERM in the
    // threads it spawns from (serve unblocks it).
    kill(serve.processIdentifier, SIGTERM)
    for _ in 0..<100 where serve.isRunning { usleep(50_000) }
    #expect(!serve.isRunning, "kscope serve did not stop on SIGTERM")
    var gone = false
    for _ in 0..<100 where !gone {
      gone = kill(Int32(nbdkit)!, 0) != 0 || (try? String(contentsOfFile: "/proc/\(nbdkit)/stat", encoding: .utf8))?.contains(") Z ") == true
      if !gone { usleep(50_000) }
    }
    #expect(gone, "nbdkit outlived kscope serve")
  }
}
