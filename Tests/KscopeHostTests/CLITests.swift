import Foundation
import KscopeCore
import KscopeHost
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
  #expect(runs[0]["offset"] as? Int == 7 * 4096)
  #expect(runs[0]["path"] as? String == "/srv/www/index.html")

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
