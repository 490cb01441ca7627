import Foundation
import KscopeCore
import KscopeRender
import KscopeTestSupport
import Testing

/// A temporary directory holding a small map file, removed at the end of `body`.
func withMapFile(_ body: (String, String) throws -> Void) throws {
  let dir = NSTemporaryDirectory() + "kscope-render-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: dir) }
  let map = craftedMap(frames: 300, colorOf: cyclic)
  let path = dir + "/a.kcm"
  try Data(ColorMapFormat.encode(map)).write(to: URL(fileURLWithPath: path))
  try body(dir, path)
}

/// A failure: non-zero exit, nothing on stdout, exactly one line on stderr.
func expectOneLineError(
  _ r: ProgramRun, containing: String, sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(r.status != 0, sourceLocation: sourceLocation)
  #expect(r.stdout.isEmpty, sourceLocation: sourceLocation)
  let lines = r.stderr.split(separator: "\n")
  #expect(lines.count == 1, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
  #expect(r.stderr.contains(containing), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
}

@Test func renderWritesADecodablePNG() throws {
  try withMapFile { dir, map in
    let png = dir + "/a.png"
    let r = try runKscope(["map", "render", map, "-o", png, "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let o = try #require(
      try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    #expect(o["output"] as? String == png)
    #expect(o["frames_per_pixel"] as? Int == 1)
    let colors = try #require(o["colors"] as? [String: Int])
    #expect(colors.count == 12)
    #expect(colors.values.reduce(0, +) == 300)
    let d = try decodePNG(Array(try Data(contentsOf: URL(fileURLWithPath: png))))
    #expect(o["width"] as? Int == d.width)
    #expect(o["height"] as? Int == d.height)
    // No temporary file left beside it.
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["a.kcm", "a.png"])

    let text = try runKscope(["map", "render", map, "-o", png, "--size", "64"])
    #expect(text.status == 0)
    #expect(text.stdout.hasPrefix(png + ": "))
    let scaled = try runKscope([
      "map", "render", map, "-o", png, "--scale", "2", "--reduce", "blend", "--json",
    ])
    let so = try #require(
      try JSONSerialization.jsonObject(with: Data(scaled.stdout.utf8)) as? [String: Any])
    #expect(so["curve_side"] as? Int == 64)
    #expect(so["pixels_per_frame"] as? Int == 2)
    #expect(so["grid_bytes"] is NSNull)
    let gridded = try runKscope(["map", "render", map, "-o", png, "--scale", "8", "--grid", "--json"])
    let go = try #require(
      try JSONSerialization.jsonObject(with: Data(gridded.stdout.utf8)) as? [String: Any])
    #expect(go["grid_bytes"] as? Int == 4096 * 256)  // 16 x 16 frames of 8 pixels
  }
}

@Test func renderBadInputsAreOneLineErrors() throws {
  try withMapFile { dir, map in
    // A damaged map: one flipped byte in the frames breaks the checksum.
    var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: map)))
    bytes[bytes.count / 2] ^= 0x40
    let damaged = dir + "/damaged.kcm"
    try Data(bytes).write(to: URL(fileURLWithPath: damaged))
    expectOneLineError(
      try runKscope(["map", "render", damaged, "-o", dir + "/x.png"]), containing: damaged)
    expectOneLineError(
      try runKscope(["map", "render", dir + "/missing.kcm", "-o", dir + "/x.png"]),
      containing: "missing.kcm")

    // An output path that cannot be written (its directory does not exist).
    let unwritable = dir + "/no/such/dir/x.png"
    expectOneLineError(
      try runKscope(["map", "render", map, "-o", unwritable]), containing: unwritable)

    expectOneLineError(
      try runKscope(["map", "render", map, "-o", dir + "/x.png", "--size", "0"]),
      containing: "--size 0")
    expectOneLineError(
      try runKscope(["map", "render", map, "-o", dir + "/x.png", "--scale", "0"]),
      containing: "--scale 0")
    expectOneLineError(
      try runKscope(["map", "render", map, "-o", dir + "/x.png", "--size", "99999"]),
      containing: "8192")
    expectOneLineError(
      try runKscope(["map", "render", map, "-o", dir + "/x.png", "--size", "8", "--scale", "2"]),
      containing: "not both")
    expectOneLineError(
      try runKscope(["map", "render", map, "-o", dir + "/x.png", "--reduce", "mean"]),
      containing: "dominant or blend")
    // Nothing was written by the failures.
    #expect(!FileManager.default.fileExists(atPath: dir + "/x.png"))
  }
}
