import Foundation
import KscopeCore
import KscopeMaps
import KscopeTestSupport
import Testing

/// A small map on disk with page-cache extents, for the CLI.
func writeSampleMap(_ path: String) throws -> ColorMap {
  var entries = [UInt16](repeating: FrameEntry(.free).rawValue, count: 100)
  for i in 10..<20 { entries[i] = FrameEntry(.pageCache, [.mapped]).rawValue }
  for i in 50..<60 { entries[i] = FrameEntry(.userData).rawValue }
  let map = ColorMap(
    header: ColorMapHeader(sources: [.kernelPageFlags], created: 1_764_129_600, kernelRelease: "6.1.0-test"),
    entries: entries,
    extents: [AttributeExtent(start: 12, count: 4, file: FileIdentity(device: 0x0080_0001, inode: 42, index: 7), path: "/srv/www/index.html")])
  try ColorMapFile.write(map, to: path)
  return map
}

@Test func mapInfoJSON() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  _ = try writeSampleMap("\(dir)/a.kcm")
  let r = try runKscope(["map", "info", "\(dir)/a.kcm", "--json"])
  #expect(r.status == 0, "\(r.stderr)")
  let o = try jsonObject(r.stdout)
  #expect(o["frames"] as? Int == 100)
  let colors = try #require(o["colors"] as? [String: Int])
  #expect(colors["free"] == 80)
  #expect(colors["page-cache"] == 10)
  #expect(colors["user-data"] == 10)
  #expect((o["kernel"] as? [String: Any])?["release"] as? String == "6.1.0-test")
  let text = try runKscope(["map", "info", "\(dir)/a.kcm"])
  #expect(text.stdout.contains("page-cache"))
}

@Test func mapQueryJSON() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  _ = try writeSampleMap("\(dir)/a.kcm")
  var o = try jsonObject(try runKscope(["map", "query", "\(dir)/a.kcm", "--inode", "42", "--json"]).stdout)
  var runs = try #require(o["runs"] as? [[String: Any]])
  #expect(runs.count == 1)
  #expect(runs[0]["start"] as? Int == 12)
  #expect(runs[0]["count"] as? Int == 4)
  #expect(runs[0]["color"] as? String == "page-cache")
  #expect(runs[0]["inode"] as? Int == 42)
  #expect(runs[0]["device"] as? String == "8:1")
  #expect(runs[0]["offset"] as? Int == 7 * 4096)
  #expect(runs[0]["path"] as? String == "/srv/www/index.html")
  #expect(runs[0]["flags"] as? [String] == ["mapped"])
  #expect(runs[0]["address"] as? String == "0xc000")

  o = try jsonObject(try runKscope(["map", "query", "\(dir)/a.kcm", "--range", "0x5-55", "--color", "free", "--json"]).stdout)
  runs = try #require(o["runs"] as? [[String: Any]])
  #expect(runs.map { $0["start"] as? Int } == [5, 20])
  #expect(runs.map { $0["count"] as? Int } == [5, 30])

  o = try jsonObject(try runKscope(["map", "query", "\(dir)/a.kcm", "--pfn", "13", "--json"]).stdout)
  runs = try #require(o["runs"] as? [[String: Any]])
  #expect(runs.count == 1)
  #expect(runs[0]["flags"] as? [String] == ["mapped"])
  #expect(runs[0]["offset"] as? Int == 8 * 4096)
}

@Test func mapDiffJSON() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  let a = try writeSampleMap("\(dir)/a.kcm")
  var entries = a.entries
  for i in 0..<5 { entries[i] = FrameEntry(.userData).rawValue }
  try ColorMapFile.write(ColorMap(header: a.header, entries: entries), to: "\(dir)/b.kcm")
  let o = try jsonObject(try runKscope(["map", "diff", "\(dir)/a.kcm", "\(dir)/b.kcm", "--json"]).stdout)
  #expect(o["changed_frames"] as? Int == 5)
  let changes = try #require(o["changes"] as? [[String: Any]])
  #expect(changes.count == 1)
  #expect(changes[0]["from"] as? String == "free")
  #expect(changes[0]["to"] as? String == "user-data")
}

@Test func badInputGetsOneLineErrorsAndNonZeroExit() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  _ = try writeSampleMap("\(dir)/a.kcm")
  var damaged = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.kcm"))
  damaged[300] ^= 0x10
  try damaged.write(to: URL(fileURLWithPath: "\(dir)/damaged.kcm"))
  try damaged.prefix(200).write(to: URL(fileURLWithPath: "\(dir)/short.kcm"))
  try Data("hello".utf8).write(to: URL(fileURLWithPath: "\(dir)/text.kcm"))
  let cases: [([String], String)] = [
    (["map", "info", "\(dir)/damaged.kcm"], "checksum mismatch"),
    (["map", "info", "\(dir)/short.kcm"], "truncated"),
    (["map", "info", "\(dir)/text.kcm"], "truncated"),
    (["map", "info", "\(dir)/nope.kcm"], "No such file"),
    (["map", "query", "\(dir)/a.kcm", "--color", "purple"], "unknown color 'purple'"),
    (["map", "query", "\(dir)/a.kcm", "--pfn", "1000"], "past the end"),
    (["map", "query", "\(dir)/a.kcm", "--range", "9-3"], "start is after end"),
    (["map", "query", "\(dir)/a.kcm", "--pfn", "x1"], "not a frame number"),
    (["map", "diff", "\(dir)/a.kcm", "\(dir)/damaged.kcm"], "damaged.kcm"),
    (["color", "--kpageflags", "\(dir)/text.kcm", "-o", "\(dir)/out.kcm"], "multiple of 8"),
    (["bench", "clones", "--workloads", "web,mail"], "--workloads takes web and/or olap"),
    (["bench", "clones", "--kernels", "../x"], "--kernels takes series"),
    (["bench", "clones", "--clones", "99"], "--clones must be 0...32"),
  ]
  for (args, words) in cases {
    let r = try runKscope(args)
    #expect(r.status != 0, "\(args) exited 0")
    let lines = r.stderr.split(separator: "\n").filter { !$0.isEmpty }
    #expect(lines.count == 1 || r.stderr.contains("Usage"), "\(args): \(r.stderr)")
    #expect(r.stderr.contains(words), "\(args): \(r.stderr)")
  }
  // A failed write leaves the previous map in place.
  let before = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.kcm"))
  _ = try runKscope(["color", "--kpageflags", "\(dir)/text.kcm", "-o", "\(dir)/a.kcm"])
  #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.kcm")) == before)
}

@Test func colorsCommandListsTheTaxonomy() throws {
  let o = try jsonObject(try runKscope(["colors", "--json"]).stdout)
  let colors = try #require(o["colors"] as? [[String: Any]])
  #expect(colors.compactMap { $0["name"] as? String } == Color.allCases.map(\.name))
}

// MARK: - Conventions every command keeps

/// Every leaf command, from the SUBCOMMANDS lists of `kscope [path] --help`.
func leafCommands(_ path: [String] = []) throws -> [[String]] {
  let help = try runKscope(path + ["--help"]).stdout
  var children: [String] = []
  var inList = false
  for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
    if line.hasPrefix("SUBCOMMANDS:") {
      inList = true
      continue
    }
    guard inList else { continue }
    if !line.isEmpty && !line.hasPrefix(" ") { break }
    // A subcommand line has two spaces then its name; wrapped abstracts are indented further.
    guard line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.split(separator: " ").first
    else { continue }
    if name == "help" || name == "See" { continue }
    children.append(String(name))
  }
  if children.isEmpty { return [path] }
  return try children.flatMap { try leafCommands(path + [$0]) }
}

@Test func everyCommandTakesJSON() throws {
  let leaves = try leafCommands()
  // The tree as of this test: a new command must keep the convention too.
  #expect(leaves.count >= 19, "\(leaves)")
  #expect(leaves.contains(["vm", "stop"]) && leaves.contains(["vm", "exec"]))
  for leaf in leaves {
    let help = try runKscope(leaf + ["--help"])
    #expect(help.stdout.contains("--json"), "kscope \(leaf.joined(separator: " ")) has no --json")
  }
}

/// Keys whose values are 64-bit addresses (or offsets in the address space).
let addressKeys: Set<String> = [
  "address", "kaslr_offset", "phys_base", "page_offset_base", "vmemmap_base", "vmalloc_base", "text",
]

/// Checks a parsed JSON value: no number a double cannot hold exactly, and every address a
/// "0x..." string that reads back to the same text. Returns the addresses seen.
@discardableResult
func checkJSONNumbers(_ v: Any, key: String = "", where place: String) -> [String: String] {
  var seen: [String: String] = [:]
  switch v {
  case let d as [String: Any]:
    for (k, x) in d { seen.merge(checkJSONNumbers(x, key: k, where: place)) { a, _ in a } }
  case let a as [Any]:
    for x in a { seen.merge(checkJSONNumbers(x, key: key, where: place)) { a, _ in a } }
  case let s as String where addressKeys.contains(key):
    let negative = s.hasPrefix("-")
    let digits = s.dropFirst(negative ? 3 : 2)
    let parsed = UInt64(digits, radix: 16)
    #expect(s.dropFirst(negative ? 1 : 0).hasPrefix("0x") && parsed != nil, "\(place): \(key) = \(s)")
    if let parsed {
      #expect((negative ? "-0x" : "0x") + String(parsed, radix: 16) == s, "\(place): \(key) = \(s) does not round-trip")
    }
    seen[key] = s
  case let n as NSNumber:
    #expect(!addressKeys.contains(key), "\(place): address \(key) is a number (\(n))")
    #expect(n.doubleValue.magnitude <= 9_007_199_254_740_992, "\(place): \(key) = \(n) is past 2^53")
  default:
    break
  }
  return seen
}

@Test func jsonOutputsParseAndAddressesAreHexStrings() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  _ = try writeSampleMap("\(dir)/a.kcm")
  try writeU64s([UInt64](repeating: 0, count: 100), to: "\(dir)/kpf")
  // A hint region with real kernel addresses (above 2^53) and a negative phys_base.
  var k = KernelSymbolHints()
  k.kaslrOffset = 0x2_4000_000
  k.text = KernelVirtualAddress(HintFormat.linkedText + 0x2_4000_000)
  k.physBase = UInt64(bitPattern: -0x100_0000)
  k.pageOffsetBase = KernelVirtualAddress(0xff32_d4a1_c000_1000)
  k.vmemmapBase = KernelVirtualAddress(0xffd1_4000_0000_0000)
  let content = HintContent(
    kernelRelease: "6.1.0-test", buildID: Array(0..<20), published: 1_790_000_000, kernel: k,
    frames: nil, files: [])
  let encoded = try HintFormat.encode(content, regionSize: 1 << 16, generation: 2)
  try Data(encoded.bytes + [UInt8](repeating: 0, count: (1 << 16) - encoded.bytes.count))
    .write(to: URL(fileURLWithPath: "\(dir)/hints"))
  let layout = try recordedLayoutPath()
  let commands: [[String]] = [
    ["colors"],
    ["map", "info", "\(dir)/a.kcm"],
    ["map", "query", "\(dir)/a.kcm"],
    ["map", "diff", "\(dir)/a.kcm", "\(dir)/a.kcm"],
    ["map", "render", "\(dir)/a.kcm", "-o", "\(dir)/a.png"],
    ["map", "verify", "\(dir)/a.kcm", "--kpageflags", "\(dir)/kpf"],
    ["color", "--kpageflags", "\(dir)/kpf", "-o", "\(dir)/k.kcm"],
    ["layout", "show", layout],
    ["layout", "show", layout, "--type", "page"],
    ["layout", "import", layout, "-o", "\(dir)/l.json"],
    ["hints", "read", "\(dir)/hints"],
    ["vm", "list", "--state-dir", dir],
    ["clone", "simulate", "--map", "\(dir)/a.kcm", "--trace", "\(dir)/trace", "--policy", "readahead-4"],
  ]
  try "# frame r|w\n0 r\n3 w\n2 r\n".write(toFile: "\(dir)/trace", atomically: true, encoding: .utf8)
  var addresses: [String: String] = [:]
  for c in commands {
    let r = try runKscope(c + ["--json"])
    #expect(r.status == 0, "\(c): \(r.stderr)")
    try expectSurvivesJQ(r.stdout, c.joined(separator: " "))
    let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    let seen = checkJSONNumbers(object, where: c.joined(separator: " "))
    if c.first == "hints" { addresses = seen }
    if c.starts(with: ["map", "query"]) { #expect(seen["address"] == "0x0") }
  }
  #expect(addresses["page_offset_base"] == "0xff32d4a1c0001000")
  #expect(addresses["phys_base"] == "-0x1000000")
  // The layout's symbols are addresses too.
  let show = try jsonObject(try runKscope(["layout", "show", layout, "--json"]).stdout)
  let symbols = try #require(show["symbols"] as? [String: String])
  #expect(symbols["_text"]?.hasPrefix("0xffffffff") == true)
}

/// A recorded 6.1 layout from the layout tests.
func recordedLayoutPath() throws -> String {
  let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  let dir = root.appendingPathComponent("KscopeLayoutTests/Recorded").path
  guard let name = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().first(where: { $0.hasPrefix("6.1.") && $0.hasSuffix(".json") })
  else { throw TestFailure("no recorded 6.1 layout in \(dir)") }
  return dir + "/" + name
}

@Test func vmStopAndExecTakeJSONAndFailInOneLine() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  for args in [["vm", "stop", "nope"], ["vm", "exec", "nope", "true"]] {
    let r = try runKscope(args + ["--state-dir", dir, "--json"])
    #expect(r.status != 0)
    #expect(r.stdout.isEmpty, "\(args): \(r.stdout)")
    #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("nope"), "\(args): \(r.stderr)")
  }
}

@Test func flagsOnEveryRunAndDevicesAsMajorMinor() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  _ = try writeSampleMap("\(dir)/a.kcm")
  let o = try jsonObject(try runKscope(["map", "query", "\(dir)/a.kcm", "--range", "0-99", "--json"]).stdout)
  let runs = try #require(o["runs"] as? [[String: Any]])
  // Page cache 10-19 is mapped, with the file's extent at 12-15: three runs.
  #expect(runs.map { $0["start"] as? Int } == [0, 10, 12, 16, 20, 50, 60])
  #expect(runs.map { $0["flags"] as? [String] } == [[], ["mapped"], ["mapped"], ["mapped"], [], [], []])
  #expect(runs[2]["device"] as? String == "8:1")
  let text = try runKscope(["map", "query", "\(dir)/a.kcm", "--inode", "42"]).stdout
  #expect(text.contains("dev 8:1 inode 42 offset 28672"), "\(text)")
}

/// A map whose inode 42 is cached on two devices (8:1 and 254:0).
func writeTwoDeviceMap(_ path: String) throws {
  var entries = [UInt16](repeating: FrameEntry(.free).rawValue, count: 40)
  for i in 10..<30 { entries[i] = FrameEntry(.pageCache).rawValue }
  try ColorMapFile.write(
    ColorMap(
      header: ColorMapHeader(sources: [.hostIntrospection], created: 0), entries: entries,
      extents: [
        AttributeExtent(start: 10, count: 5, file: FileIdentity(device: 8 << 20 | 1, inode: 42, index: 0)),
        AttributeExtent(start: 20, count: 3, file: FileIdentity(device: 254 << 20, inode: 42, index: 9)),
      ]), to: path)
}

@Test func queryByInodeAndDevice() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  try writeTwoDeviceMap("\(dir)/m.kcm")
  func starts(_ extra: [String]) throws -> [Int?] {
    let r = try runKscope(["map", "query", "\(dir)/m.kcm", "--json"] + extra)
    #expect(r.status == 0, "\(r.stderr)")
    return (try jsonObject(r.stdout)["runs"] as? [[String: Any]] ?? []).map { $0["start"] as? Int }
  }
  #expect(try starts(["--inode", "42"]) == [10, 20])
  #expect(try starts(["--inode", "42", "--dev", "254:0"]) == [20])
  #expect(try starts(["--inode", "42", "--dev", "8:1"]) == [10])
  #expect(try starts(["--dev", "254:0"]) == [20])
  #expect(try starts(["--inode", "42", "--dev", "9:9"]) == [])
  let text = try runKscope(["map", "query", "\(dir)/m.kcm", "--inode", "42"]).stdout
  #expect(text.contains("dev 8:1 inode 42") && text.contains("dev 254:0 inode 42"), "\(text)")
  for bad in ["254", "x:1", "4096:0", "1:1048576"] {
    let r = try runKscope(["map", "query", "\(dir)/m.kcm", "--dev", bad])
    #expect(r.status != 0 && r.stderr.contains("major:minor"), "\(bad): \(r.stderr)")
  }
}

@Test func mapDiffRefusesMapsOfDifferentMachines() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  let a = try writeSampleMap("\(dir)/a.kcm")
  // More frames.
  try ColorMapFile.write(ColorMap(header: a.header, entries: a.entries + [FrameEntry(.free).rawValue]), to: "\(dir)/longer.kcm")
  // Another kernel.
  var other = a.header
  other.kernelRelease = "6.12.0-test"
  try ColorMapFile.write(ColorMap(header: other, entries: a.entries), to: "\(dir)/kernel.kcm")
  // A different image size.
  var image = a.header
  image.image = .xxh64(1, size: 1 << 30)
  var image2 = a.header
  image2.image = .xxh64(2, size: 1 << 29)
  try ColorMapFile.write(ColorMap(header: image, entries: a.entries), to: "\(dir)/i1.kcm")
  try ColorMapFile.write(ColorMap(header: image2, entries: a.entries), to: "\(dir)/i2.kcm")
  for (x, y, why) in [
    ("a", "longer", "frame counts differ"), ("a", "kernel", "kernels differ"), ("i1", "i2", "image sizes differ"),
  ] {
    let refused = try runKscope(["map", "diff", "\(dir)/\(x).kcm", "\(dir)/\(y).kcm"])
    #expect(refused.status != 0, "\(x) vs \(y)")
    #expect(refused.stdout.isEmpty)
    #expect(refused.stderr.contains(why) && refused.stderr.contains("--force"), "\(refused.stderr)")
    let forced = try runKscope(["map", "diff", "\(dir)/\(x).kcm", "\(dir)/\(y).kcm", "--force", "--json"])
    #expect(forced.status == 0, "\(forced.stderr)")
    #expect(forced.stderr.contains("warning: \(why)"), "\(forced.stderr)")
    let warnings = try jsonObject(forced.stdout)["warnings"] as? [String]
    #expect(warnings?.count == 1 && warnings?.first?.contains(why) == true)
  }
  // Same machine, different content (a parent and its clone): no refusal, no warning.
  var clone = a.header
  clone.image = .xxh64(3, size: 1 << 30)
  try ColorMapFile.write(ColorMap(header: clone, entries: a.entries), to: "\(dir)/clone.kcm")
  let same = try runKscope(["map", "diff", "\(dir)/i1.kcm", "\(dir)/clone.kcm"])
  #expect(same.status == 0 && same.stderr.isEmpty, "\(same.stderr)")
}

@Test func textOutputSmallThings() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  let a = try writeSampleMap("\(dir)/a.kcm")
  // Singular counts, and frames echoed in hex when asked in hex.
  var r = try runKscope(["map", "query", "\(dir)/a.kcm", "--pfn", "0xd"])
  #expect(r.stdout.hasPrefix("       0xd +1 "), "\(r.stdout)")
  #expect(r.stdout.hasSuffix("\n1 run, 1 frame\n"), "\(r.stdout)")
  r = try runKscope(["map", "query", "\(dir)/a.kcm", "--pfn", "13"])
  #expect(r.stdout.hasPrefix("        13 +1 "), "\(r.stdout)")
  r = try runKscope(["map", "query", "\(dir)/a.kcm", "--color", "user-data"])
  #expect(r.stdout.hasSuffix("\n1 run, 10 frames\n"), "\(r.stdout)")
  // A long metadata key keeps two spaces before its value.
  var header = a.header
  header.metadata = [("source.layout", "/var/cache/kscope/layouts/x.json")]
  try ColorMapFile.write(ColorMap(header: header, entries: a.entries, extents: a.extents), to: "\(dir)/m.kcm")
  r = try runKscope(["map", "info", "\(dir)/m.kcm"])
  let lines = r.stdout.split(separator: "\n")
  #expect(lines.contains { $0.hasPrefix("source.layout  /var/cache/kscope/layouts/x.json") }, "\(r.stdout)")
  #expect(lines.contains { $0.hasSuffix("1 attribute extent") }, "\(r.stdout)")
  var entries = a.entries
  entries[0] = FrameEntry(.userData).rawValue
  try ColorMapFile.write(ColorMap(header: a.header, entries: entries), to: "\(dir)/b.kcm")
  r = try runKscope(["map", "diff", "\(dir)/a.kcm", "\(dir)/b.kcm"])
  #expect(r.stdout.hasPrefix("1 of 100 frames changed color in 1 run\n"), "\(r.stdout)")
}

@Test func helpTextsAreWrappedOnce() throws {
  // ArgumentParser wraps discussions (to 80 columns off a terminal): a paragraph hard-wrapped
  // in the source as well comes out ragged. Inside a paragraph, the next line's first word
  // must not have fitted on the line before.
  for leaf in try leafCommands() + [[]] {
    let help = try runKscope(leaf + ["--help"]).stdout
    guard let overview = help.components(separatedBy: "USAGE:").first else { continue }
    let lines = overview.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    for (i, line) in lines.enumerated() where i + 1 < lines.count {
      let next = lines[i + 1]
      // Examples (indented) and list items are laid out by hand.
      guard !line.hasPrefix(" "), !next.hasPrefix(" "), !next.isEmpty, !line.isEmpty else { continue }
      guard !line.hasPrefix("OVERVIEW:") else { continue }
      let word = next.split(separator: " ").first.map(String.init) ?? ""
      #expect(
        line.count + 1 + word.count >= 80,
        "kscope \(leaf.joined(separator: " ")): '\(word)' would have fitted after '\(line)'")
    }
  }
}

@Test func progressIsOneLineOnATerminalAndQuietLinesOtherwise() {
  var out: [String] = []
  var clock = 0.0
  let tty = ProgressLine("olap", terminal: true, write: { out.append($0) }, now: { clock })
  tty.update("query 1 of 5")
  tty.update("query 2 of 5")
  tty.finish()
  #expect(out == ["\rolap: query 1 of 5\u{1B}[K", "\rolap: query 2 of 5\u{1B}[K", "\r\u{1B}[K"])

  out = []
  let log = ProgressLine("copy", interval: 10, terminal: false, write: { out.append($0) }, now: { clock })
  for step in 0..<25 {
    log.update("step \(step)")
    clock += 1
  }
  log.finish()
  // A plain line at once, then at most one every 10 s; nothing to erase at the end.
  #expect(out == ["kscope: copy: step 0\n", "kscope: copy: step 10\n", "kscope: copy: step 20\n"])
}

@Test func layoutShowSaysWhichSizesAreNotRecorded() throws {
  let r = try runKscope(["layout", "show", try recordedLayoutPath(), "--type", "page"])
  #expect(r.status == 0, "\(r.stderr)")
  #expect(!r.stdout.contains(" ?"), "\(r.stdout)")
  #expect(r.stdout.contains("struct spinlock ptl;                             /* 40, size not recorded */"), "\(r.stdout)")
  #expect(r.stdout.contains("/* not recorded: callback_head, spinlock (kscope layout extract --types callback_head,spinlock records them) */"))
}

/// `clone trace` writes '<frame> w' for exactly the frames whose bytes differ between two
/// snapshots of one parent, in frame order.
@Test func cloneTraceListsTheFramesThatChanged() throws {
  let a = try SampleSnapshot.makeDirectory()
  let b = try SampleSnapshot.makeDirectory()
  defer {
    try? FileManager.default.removeItem(atPath: a)
    try? FileManager.default.removeItem(atPath: b)
  }
  let changed: [UInt64] = [4000, 5, 77]
  let fh = try #require(FileHandle(forUpdatingAtPath: b + "/ram"))
  for f in changed {
    try fh.seek(toOffset: f * 4096 + 4095)  // the page's last byte: the whole page is compared
    try fh.write(contentsOf: Data([0x5a]))
  }
  try fh.close()
  let trace = b + "/trace"
  let r = try runKscope(["clone", "trace", "--from", a, "--to", b, "-o", trace, "--json"])
  #expect(r.status == 0, "clone trace: \(r.stderr)")
  let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
  #expect(j?["accesses"] as? Int == changed.count)
  let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
    .filter { !$0.hasPrefix("#") }.map(String.init)
  #expect(lines == changed.sorted().map { "\($0) w" }, "\(lines)")
}
