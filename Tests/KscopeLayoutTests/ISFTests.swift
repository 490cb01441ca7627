import KscopeCore
import KscopeDebugInfo
import KscopeLayout
import KscopeOS
import Testing

// ISF in and out: our files are deterministic and schema-shaped; dwarf2json-style files
// (anonymous fields, unnamed_ types, everything else of the kernel) import into our layout.

@Suite struct ISFTests {
  @Test(arguments: [Recorded.release61, Recorded.release612])
  func recordedFilesRoundTripByteForByte(release: String) throws {
    let text = try Recorded.text(release)
    let layout = try KernelLayout(isfBytes: Array(text.utf8))
    #expect(layout.isfText() == text)
    #expect(try KernelLayout(isfBytes: Array(layout.isfText().utf8)) == layout)
  }

  @Test func outputUsesOnlyWhatTheVolatilitySchemaAllows() throws {
    let json = try Recorded.layout(Recorded.release61).isfJSON()
    #expect(
      json.objectValue.map { Set($0.keys) } == [
        "metadata", "base_types", "user_types", "enums", "symbols",
      ])
    let metadata = try #require(json["metadata"]?.objectValue)
    #expect(Set(metadata.keys) == ["format", "producer", "linux"])
    #expect(metadata["format"]?.stringValue == "6.2.0")
    #expect(json["metadata"]?["producer"]?["version"]?.stringValue == "0.1.0")
    #expect(json["metadata"]?["linux"]?.objectValue.map { Set($0.keys) } == ["symbols", "types"])
    for (_, type) in try #require(json["user_types"]?.objectValue) {
      #expect(type.objectValue.map { Set($0.keys) } == ["kind", "size", "fields"])
      for (_, field) in try #require(type["fields"]?.objectValue) {
        #expect(field.objectValue.map { Set($0.keys) } == ["offset", "type"])
        if field["type"]?["kind"]?.stringValue == "bitfield" {
          // The schema allows only base or enum storage types for bitfields.
          let storage = field["type"]?["type"]?["kind"]?.stringValue
          #expect(storage == "base" || storage == "enum")
        }
      }
    }
    for (_, symbol) in try #require(json["symbols"]?.objectValue) {
      #expect(symbol["address"]?.uint64Value != nil)
      #expect(
        symbol.objectValue.map { Set($0.keys).isSubset(of: ["address", "constant_data"]) } == true)
    }
  }

  /// A dwarf2json-shaped document: page nests mapping/index in an anonymous struct inside an
  /// anonymous union, as DWARF does, plus types and symbols kscope does not want.
  static func dwarf2jsonStyle(from layout: KernelLayout, dropping member: String? = nil)
    -> JSONValue
  {
    guard case .object(var root) = layout.isfJSON() else { return .null }
    guard case .object(var user) = root["user_types"]!, case .object(var page) = user["page"]!,
      case .object(var fields) = page["fields"]!
    else { return .null }
    // Move mapping (24) and index (32) into unnamed_aaaa (a struct at offset 16 inside an
    // anonymous union unnamed_bbbb at offset 8), with offsets relative to their parents.
    let mapping = fields.removeValue(forKey: "mapping")!
    let index = fields.removeValue(forKey: "index")!
    func shifted(_ field: JSONValue, by delta: UInt64) -> JSONValue {
      guard case .object(var f) = field, let offset = f["offset"]?.uint64Value else { return field }
      f["offset"] = .unsigned(offset - delta)
      return .object(f)
    }
    user["unnamed_aaaa"] = .object([
      "kind": .string("struct"), "size": .unsigned(16),
      "fields": .object(["mapping": shifted(mapping, by: 24), "index": shifted(index, by: 24)]),
    ])
    user["unnamed_bbbb"] = .object([
      "kind": .string("union"), "size": .unsigned(40),
      "fields": .object([
        "unnamed_field_10": .object([
          "offset": .unsigned(16), "anonymous": .bool(true),
          "type": .object(["kind": .string("struct"), "name": .string("unnamed_aaaa")]),
        ])
      ]),
    ])
    fields["unnamed_field_8"] = .object([
      "offset": .unsigned(8), "anonymous": .bool(true),
      "type": .object(["kind": .string("union"), "name": .string("unnamed_bbbb")]),
    ])
    if let member { fields.removeValue(forKey: member) }
    page["fields"] = .object(fields)
    user["page"] = .object(page)
    // Unrelated kernel types and symbols that an import must leave out.
    user["sk_buff"] = .object([
      "kind": .string("struct"), "size": .unsigned(232), "fields": .object([:]),
    ])
    root["user_types"] = .object(user)
    // dwarf2json knows nothing of kscope's page_type rule: the import must add it by release.
    if case .object(var enums) = root["enums"]! {
      enums.removeValue(forKey: PageTypeEncoding.ruleEnumName)
      root["enums"] = .object(enums)
    }
    if case .object(var symbols) = root["symbols"]! {
      symbols["jiffies"] = .object(["address": .unsigned(0xffff_ffff_8290_0000)])
      root["symbols"] = .object(symbols)
    }
    root["metadata"] = .object([
      "format": .string("6.2.0"),
      "producer": .object(["name": .string("dwarf2json"), "version": .string("0.8.0")]),
      "linux": .object([
        "symbols": .array([.object(["kind": .string("dwarf"), "name": .string("vmlinux")])])
      ]),
    ])
    return .object(root)
  }

  @Test func anonymousFieldsAreFlattened() throws {
    let recorded = try Recorded.layout(Recorded.release61)
    let imported = try KernelLayout(isf: ISFTests.dwarf2jsonStyle(from: recorded))
    #expect(try imported.offset(of: "page", member: "mapping") == 24)
    #expect(try imported.offset(of: "page", member: "index") == 32)
    #expect(imported.userTypes["page"]?.member(named: "unnamed_field_8") == nil)
    #expect(imported.userTypes["page"]?.members.count == recorded.userTypes["page"]?.members.count)
  }

  @Test func importKeepsWhatKscopeUses() throws {
    let recorded = try Recorded.layout(Recorded.release61)
    let scratch = try ScratchDirectory()
    let file = try scratch.write(
      "dwarf2json.json", Array(ISFTests.dwarf2jsonStyle(from: recorded).serialized().utf8))
    let imported = try LayoutFile.importISF(file)
    #expect(imported.userTypes["sk_buff"] == nil)
    #expect(imported.symbols["jiffies"] == nil)
    #expect(imported.producer == ("kscope", "0.1.0"))
    #expect(imported.sources == [LayoutSource(kind: "dwarf", name: "vmlinux")])
    for name in LayoutRequest.default.types {
      #expect(imported.userTypes[name] == recorded.userTypes[name], "\(name)")
    }
    #expect(imported.enums == recorded.enums)
    #expect(imported.symbols == recorded.symbols)
    #expect(imported.release == Recorded.release61)
  }

  @Test(arguments: [Recorded.release61, Recorded.release612])
  func importingOurOwnFileChangesNothing(release: String) throws {
    #expect(try LayoutFile.importISF(Recorded.path(release)) == Recorded.layout(release))
  }

  @Test func importNamesWhatIsMissing() throws {
    let recorded = try Recorded.layout(Recorded.release61)
    let scratch = try ScratchDirectory()
    let file = try scratch.write(
      "old.json",
      Array(ISFTests.dwarf2jsonStyle(from: recorded, dropping: "_refcount").serialized().utf8))
    #expect(
      throws: DebugInfoError.invalidLayout(
        path: file, reason: "missing member page._refcount|_count; no layout written")
    ) {
      try LayoutFile.importISF(file)
    }
    var request = LayoutRequest.default.adding(types: ["slab"])
    request.symbols.append("no_such_symbol")
    do {
      _ = try LayoutFile.importISF(file, request: request)
      Issue.record("import of an incomplete ISF succeeded")
    } catch {
      #expect(error.description.contains("type slab"))
      #expect(error.description.contains("symbol no_such_symbol"))
      #expect(error.description.hasPrefix(file + ": "))
    }
  }

  @Test func malformedISFIsRejectedWithAPath() throws {
    let scratch = try ScratchDirectory()
    let cases: [(String, String)] = [
      ("?", "invalid ISF at $: invalid JSON at byte 0: unexpected character"),
      ("{\"metadata\": {}}", "invalid ISF at base_types: missing or not an object"),
      (
        #"{"metadata": {"format": "6.2.0"}, "base_types": {}, "user_types": {"page": {"kind": "struct", "size": 64, "fields": {"flags": {"offset": "zero", "type": {"kind": "base", "name": "int"}}}}}, "enums": {}, "symbols": {}}"#,
        "invalid ISF at user_types.page.fields.flags.offset: not an offset"
      ),
      (
        #"{"metadata": {"format": "4.1.0"}, "base_types": {}, "user_types": {}, "enums": {}, "symbols": {}}"#,
        "invalid ISF at metadata.format: version 4.1.0, expected 6.x"
      ),
      (
        #"{"metadata": {"format": "6.2.0"}, "base_types": {}, "user_types": {}, "enums": {}, "symbols": {"x": {"address": -1}}}"#,
        "invalid ISF at symbols.x.address: not an unsigned 64-bit integer"
      ),
    ]
    for (i, (text, reason)) in cases.enumerated() {
      let file = try scratch.write("bad\(i).json", Array(text.utf8))
      #expect(throws: DebugInfoError.invalidLayout(path: file, reason: reason)) {
        try LayoutFile.read(file)
      }
    }
  }

  @Test func atomicWriteReplacesWholeFiles() throws {
    let scratch = try ScratchDirectory()
    let file = scratch.path + "/layout.json"
    try LayoutFile.write("first", to: file)
    try LayoutFile.write("second", to: file)
    #expect(try Files.read(file) == Array("second".utf8))
    #expect(throws: DebugInfoError.self) {
      try LayoutFile.write("x", to: scratch.path + "/no/such/dir/f.json")
    }
  }
}

/// The byte writer writes exactly what the String writer writes: recorded layouts, and values
/// with escapes, non-ASCII text, negative and extreme integers, empty and one-line containers.
@Test func byteWriterMatchesTheTextWriter() throws {
  for release in [Recorded.release61, Recorded.release612] {
    let layout = try Recorded.layout(release)
    #expect(layout.isfBytes() == Array(layout.isfJSON().serialized(expandDepth: 4).utf8))
  }
  let odd: JSONValue = .object([
    "s": .string("quote \" backslash \\ nl \n cr \r tab \t bell \u{7} nul \u{0} unit \u{1f} é 漢 🙂"),
    "n": .array([.signed(Int64.min), .signed(-1), .unsigned(0), .unsigned(UInt64.max), .double(1.5), .null, .bool(true)]),
    "e": .object([:]), "a": .array([]),
    "nested": .object(["x": .object(["y": .object(["z": .object(["deep": .array([.unsigned(7)])])])])]),
    "flat": .object(["a": .unsigned(1), "b": .string("x")]),
  ])
  for depth in 0...5 {
    #expect(odd.serializedUTF8(expandDepth: depth) == Array(odd.serialized(expandDepth: depth).utf8))
  }
}
