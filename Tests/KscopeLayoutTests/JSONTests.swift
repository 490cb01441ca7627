import Testing

@testable import KscopeLayout

@Suite struct JSONTests {
  @Test func integersKeepSixtyFourBits() throws {
    let value = try JSONValue.parse(
      #"{"a": 18446744071578845184, "b": -9223372036854775808, "c": -1, "d": 0}"#)
    #expect(value["a"]?.uint64Value == 0xffff_ffff_8100_0000)
    #expect(value["b"]?.int64Value == Int64.min)
    #expect(value["c"]?.int64Value == -1)
    #expect(value["d"]?.uint64Value == 0)
    #expect(value["a"]?.int64Value == nil)
    // Beyond 64 bits, or with a fraction, a number is a double.
    #expect(try JSONValue.parse("18446744073709551616") == .double(18_446_744_073_709_551_616))
    #expect(try JSONValue.parse("1.5e2") == .double(150))
  }

  @Test func stringsAndEscapes() throws {
    let value = try JSONValue.parse(#"["a\"b\\c\/d\n\u00e9\ud83d\ude00"]"#)
    #expect(value.arrayValue?.first?.stringValue == "a\"b\\c/d\né😀")
    let text = JSONValue.string("tab\there \"q\" \u{01}").serialized()
    #expect(text == "\"tab\\there \\\"q\\\" \\u0001\"\n")
    #expect(try JSONValue.parse(text) == .string("tab\there \"q\" \u{01}"))
  }

  @Test func writerIsDeterministic() throws {
    let value = JSONValue.object([
      "z": .array([.unsigned(1), .signed(-2)]), "a": .object(["y": .bool(true), "x": .null]),
    ])
    #expect(
      value.serialized(expandDepth: 1)
        == "{\n  \"a\": {\"x\": null, \"y\": true},\n  \"z\": [1, -2]\n}\n")
    #expect(try JSONValue.parse(value.serialized()) == value)
  }

  @Test func errorsSayWhere() {
    #expect(throws: JSONParseError(offset: 7, reason: "expected ',' or '}'")) {
      try JSONValue.parse(#"{"a":1 "b":2}"#)
    }
    #expect(throws: JSONParseError(offset: 4, reason: "unterminated string")) {
      try JSONValue.parse(#"["ab"#)
    }
    #expect(throws: JSONParseError(offset: 2, reason: "trailing characters")) {
      try JSONValue.parse("1 2")
    }
    #expect(throws: JSONParseError(offset: 256, reason: "nested too deeply")) {
      try JSONValue.parse(String(repeating: "[", count: 300))
    }
    #expect(throws: JSONParseError.self) { try JSONValue.parse("") }
    #expect(throws: JSONParseError.self) { try JSONValue.parse("tru") }
  }

  @Test func base64RoundTrips() {
    for text in ["", "L", "Li", "Lin", "Linux version 6.1\n\0"] {
      let bytes = Array(text.utf8)
      #expect(KernelLayout.bytes(base64: KernelLayout.base64(bytes)) == bytes)
    }
    #expect(KernelLayout.base64(Array("Linux".utf8)) == "TGludXg=")
    #expect(KernelLayout.bytes(base64: "TGludXg") == nil)
    #expect(KernelLayout.bytes(base64: "TGlu*Xg=") == nil)
  }

  /// The index (`check`, `forEachMember`) reads the grammar `parse` reads: the same errors at
  /// the same offsets, and member ranges that decode to the members `parse` gives.
  @Test func indexAgreesWithParse() throws {
    let bad = [
      "", "{", "{\"a\" 1}", "{\"a\": [1, 2}", "{\"a\": \"\\x\"}", "{\"a\": \"\u{1}\"}",
      "{\"a\": \"\\ud800\"}", "{\"a\": tru}", "{\"a\": 1} 2", "{\"a\": -}",
      String(repeating: "[", count: 300),
    ]
    for text in bad {
      let bytes = Array(text.utf8)
      var parseError: JSONParseError?
      do { _ = try JSONValue.parse(bytes) } catch { parseError = error }
      var checkError: JSONParseError?
      do { _ = try JSONValue.check(bytes) } catch { checkError = error }
      #expect(parseError != nil && checkError == parseError, "\(text.prefix(20))")
    }
    let text = Array(#"{"a": {"b": [1, -2, 3.5, "x\u00e9"]}, "c": null, "d": true}"#.utf8)
    #expect(try JSONValue.check(text))
    #expect(try !JSONValue.check(Array("[1]".utf8)))
    var members: [String: JSONValue] = [:]
    try JSONValue.forEachMember(in: text, range: 0..<text.count) { (key, range) throws(JSONParseError) in
      members[key] = try JSONValue.parse(text, range: range)
    }
    #expect(JSONValue.object(members) == (try JSONValue.parse(text)))
  }
}
