import Foundation
import KscopeOS
import KscopeTestSupport
import Testing

/// Issue 10: a reader of an untrusted file uses at most 2x the file's size in memory. Each
/// reader runs in a child `kscope` process on a large valid input, and the child's own peak
/// RSS (wait4's ru_maxrss) is compared with the input's size.
@Suite struct ReaderMemoryTests {
  /// The recorded 6.12 layout, as the base of a dwarf2json-sized ISF.
  static let recorded =
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("KscopeLayoutTests/Recorded/6.12.117+deb12-cloud-amd64.json").path

  /// A valid ISF of about `bytes` bytes from another producer: the recorded layout plus filler
  /// structs (40 pointer members each) the way a whole kernel's ISF has thousands of types.
  static func largeISF(bytes: Int, at path: String) throws {
    let base = try Files.read(recorded)
    var text = String(decoding: base, as: UTF8.self)
    // Another producer: what `layout import` is for.
    text = text.replacingOccurrences(of: "\"name\": \"kscope\"", with: "\"name\": \"dwarf2json\"")
    guard let userTypes = text.range(of: "\"user_types\": {") else {
      throw TestFailure("no user_types in \(recorded)")
    }
    let head = String(text[..<userTypes.upperBound])
    let tail = String(text[userTypes.upperBound...])
    guard FileManager.default.createFile(atPath: path, contents: nil) else {
      throw TestFailure("cannot create \(path)")
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? out.close() }
    try out.write(contentsOf: Data(head.utf8))
    var written = head.utf8.count + tail.utf8.count
    var i = 0
    while written < bytes {
      var s = "\n  \"filler_\(i)\": {\"kind\": \"struct\", \"size\": 320, \"fields\": {"
      for j in 0..<40 {
        s += j == 0 ? "\n" : ",\n"
        s +=
          "    \"member_\(j)\": {\"offset\": \(j * 8), \"type\": {\"kind\": \"pointer\", \"subtype\": {\"kind\": \"struct\", \"name\": \"filler_\(i + 1)\"}}}"
      }
      s += "}},"
      try out.write(contentsOf: Data(s.utf8))
      written += s.utf8.count
      i += 1
    }
    try out.write(contentsOf: Data(tail.utf8))
  }

  @Test func layoutImportStaysWithinTwiceTheInput() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let isf = dir + "/kernel.json"
    // Just under the 64 MiB import limit.
    try Self.largeISF(bytes: 60 << 20, at: isf)
    let size = try OpenFile.open(isf).size
    #expect(size > 56 << 20 && size <= 64 << 20)
    let run = try ChildProcess.measured(
      [try kscopeBinary(), "layout", "import", isf, "-o", dir + "/layout.json"], errorsToo: true)
    #expect(run.succeeded)
    let peak = UInt64(run.maxRSSKiB) * 1024
    print(
      "layout import of \(size) bytes: peak RSS \(peak >> 20) MiB (\(Double(peak) / Double(size))x)"
    )
    #expect(peak <= 2 * size, "peak RSS \(peak) bytes for a \(size)-byte ISF")
    // The import kept what the walkers need, not the filler.
    let imported = String(decoding: try Files.read(dir + "/layout.json"), as: UTF8.self)
    #expect(imported.contains("\"task_struct\"") && !imported.contains("filler_"))
  }

  /// `layout show` (the reader `color --layout` uses) on an ISF just under its 8 MiB limit.
  /// At this size the process's own start (~25 MiB) is larger than 2x the input, so the bound
  /// is on the memory above that: the same command on the recorded 80 KB layout.
  @Test func layoutReadStaysWithinTwiceTheInputAboveItsBaseline() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let isf = dir + "/kernel.json"
    try Self.largeISF(bytes: 7 << 20 + 1 << 19, at: isf)
    let size = try OpenFile.open(isf).size
    #expect(size > 7 << 20 && size <= 8 << 20)
    let binary = try kscopeBinary()
    let baseline = try ChildProcess.measured([binary, "layout", "show", Self.recorded])
    let run = try ChildProcess.measured([binary, "layout", "show", isf])
    #expect(baseline.succeeded && run.succeeded)
    let above = UInt64(max(0, run.maxRSSKiB - baseline.maxRSSKiB)) * 1024
    print(
      "layout show of \(size) bytes: peak RSS \(run.maxRSSKiB >> 10) MiB, \(above >> 20) MiB above the baseline's \(baseline.maxRSSKiB >> 10) MiB"
    )
    #expect(above <= 2 * size, "\(above) bytes above the baseline for a \(size)-byte ISF")
  }
}
