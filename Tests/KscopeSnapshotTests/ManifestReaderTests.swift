import Foundation
import KscopeTestSupport
import Testing

@testable import KscopeSnapshot

/// The manifest's own JSON reader (`ManifestReader`): JSON as RFC 8259 has it, every string
/// bounded before it is decoded, unknown keys skipped, anything else refused with one line.
@Suite struct ManifestReaderTests {
  static func good() -> SnapshotManifest { SampleSnapshot.manifest() }

  /// The sample's JSON with `key`'s value replaced by `value` (raw JSON text).
  static func with(_ key: String, _ value: String) throws -> Data {
    var obj = try JSONSerialization.jsonObject(with: try good().encoded()) as! [String: Any]
    obj[key] = "@@"
    let text = String(decoding: try JSONSerialization.data(withJSONObject: obj), as: UTF8.self)
    return Data(text.replacingOccurrences(of: "\"@@\"", with: value).utf8)
  }

  func refused(_ data: Data, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
      _ = try SnapshotManifest.decode(data)
      Issue.record("accepted (expected '\(words)')", sourceLocation: sourceLocation)
    } catch {
      let text = "\(error)"
      #expect(text.contains(words), "\(text)", sourceLocation: sourceLocation)
      #expect(!text.contains("\n"), sourceLocation: sourceLocation)
    }
  }

  @Test func readsWhatFoundationWrites() throws {
    // Compact, keys in another order, slashes escaped.
    let object = try JSONSerialization.jsonObject(with: try Self.good().encoded())
    let text = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    #expect(text.contains("\\/"))
    let data = Data(text.utf8)
    #expect(try SnapshotManifest.decode(data) == Self.good())
  }

  @Test func stringEscapesAreDecoded() throws {
    let m = try SnapshotManifest.decode(
      try Self.with("paused_at", #""a\"b\\c\/d\n\t\u00e9\ud83d\ude00\u0041""#))
    #expect(m.pausedAt == "a\"b\\c/d\n\té😀A")
    let raw = try SnapshotManifest.decode(try Self.with("paused_at", "\"é😀\""))
    #expect(raw.pausedAt == "é😀")
  }

  @Test func unknownKeysAreSkippedWithoutDecoding() throws {
    let m = try SnapshotManifest.decode(
      try Self.with("x_future", #"{"a": [1, -2.5e3, true, false, null, "s", {"b": []}], "c": {}}"#))
    #expect(m == Self.good())
    refused(
      try Self.with("x", String(repeating: "[", count: 40) + String(repeating: "]", count: 40)),
      "nested deeper")
  }

  @Test func malformedJSONIsRefused() throws {
    for (value, words) in [
      ("\"a\u{01}b\"", "control character"),
      (#""\ud800""#, "lone surrogate"),
      (#""\udc00x""#, "lone surrogate"),
      (#""\x""#, "unknown escape"),
      (#""\u12""#, "\\u escape"),
      ("01", "not a number"),
      ("1.", "bad number"),
      ("[1,]", "not a number"),
      ("tru", "not a number"),
    ] {
      refused(try Self.with("x", value), words)
    }
    let good = try Self.good().encoded()
    refused(good + Data("{}".utf8), "bytes after the document")
    refused(Data("{\"format\": \"abc".utf8), "unterminated string")
    refused(Data([0xEF, 0xBB, 0xBF]) + good, "not an object")
    // Invalid UTF-8 in a string: a lone continuation byte, an overlong form, a surrogate.
    for bad: [UInt8] in [[0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] {
      var d = try Self.with("paused_at", "\"@!\"")
      let at = d.firstRange(of: Data("@!".utf8))!
      d.replaceSubrange(at, with: bad)
      refused(d, "invalid UTF-8")
    }
  }

  @Test func wrongTypesAndNumbersAreRefused() throws {
    refused(try Self.with("ram_size", "-1"), "wrong type at ram_size")
    refused(try Self.with("ram_size", "536870912.0"), "wrong type at ram_size")
    refused(try Self.with("ram_size", "18446744073709551616"), "does not fit 64 bits")
    refused(try Self.with("cpus", "\"1\""), "wrong type at cpus")
    refused(try Self.with("cpus", "-9223372036854775809"), "does not fit 64 bits")
    refused(try Self.with("device_state_seconds", "1e999"), "not a finite number")
    refused(try Self.with("kernel", "[]"), "wrong type at kernel")
    refused(try Self.with("memory_layout", #"[{"size": 1}]"#), "missing a field of memory_layout.0")
    refused(try Self.with("image", "null"), "wrong type at image")
    let text = String(decoding: try Self.good().encoded(), as: UTF8.self)
    refused(
      Data(text.replacingOccurrences(of: "\"ram_size\"", with: "\"ram_sizes\"").utf8),
      "missing \"ram_size\"")
    refused(
      Data(text.replacingOccurrences(of: "{\n", with: "{\n  \"cpus\": 1,\n").utf8),
      "\"cpus\" appears twice")
  }

  /// What the reader allocates is bounded before it allocates it.
  @Test func stringsAndListsAreBoundedBeforeTheyAreDecoded() throws {
    var m = Self.good()
    m.kernel.directory = "/" + String(repeating: "d", count: 4095)
    #expect(try SnapshotManifest.decode(try m.encoded()) == m)
    m.kernel.directory += "d"
    refused(try m.encoded(), "kernel.directory is a string of 4097 bytes")
    m = Self.good()
    m.qemuCommandLine = Array(repeating: "x", count: 256)
    #expect(try SnapshotManifest.decode(try m.encoded()) == m)
    m.qemuCommandLine.append("x")
    refused(try m.encoded(), "more than 256 arguments")
    // The shape the 1 MiB memory test used to pad with: a stored argv of 1 MiB.
    m.qemuCommandLine = Array(repeating: String(repeating: "a", count: 4000), count: 17)
    refused(try m.encoded(), "more than 65536 bytes")
    let keys = (0..<70).map { "\"k\($0)\": 0" }.joined(separator: ", ")
    refused(
      try Self.with("x", "{\(keys)}").replacingOccurrences(of: "{", with: "{\(keys), ", limit: 1),
      "more than 64 keys")
    refused(try Self.with("x", "1" + String(repeating: "0", count: 70)), "a number of 71 digits")
    refused(try Self.with(String(repeating: "k", count: 65), "1"), "a key")
  }
}

extension Data {
  /// `self` with the first `limit` occurrences of `a` (as UTF-8 text) replaced by `b`.
  fileprivate func replacingOccurrences(of a: String, with b: String, limit: Int) -> Data {
    var text = String(decoding: self, as: UTF8.self)
    for _ in 0..<limit {
      guard let r = text.range(of: a) else { break }
      text.replaceSubrange(r, with: b)
    }
    return Data(text.utf8)
  }
}
