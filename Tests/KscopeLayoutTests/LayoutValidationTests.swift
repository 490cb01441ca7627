import Foundation
import KscopeDebugInfo
import KscopeLayout
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Sets the value at a dotted path of keys inside a JSON object (nil removes it).
func setting(_ json: JSONValue, _ path: [String], _ value: JSONValue?) -> JSONValue {
  guard case .object(var members) = json, let first = path.first else { return value ?? .null }
  if path.count == 1 {
    members[first] = value
  } else {
    members[first] = setting(members[first] ?? .object([:]), Array(path.dropFirst()), value)
  }
  return .object(members)
}

/// One validator for every way a layout comes in; hostile numbers are refused, never trapped
/// on (issue 10, items 3 and 6).
@Suite struct LayoutValidationTests {
  static func recordedJSON() throws -> JSONValue {
    try JSONValue.parse(Array(try Recorded.text(Recorded.release61).utf8))
  }

  /// Writes `json` to a file and runs every way in: read (show, --layout, cache) and import.
  func refusedEverywhere(
    _ json: JSONValue, _ words: String, sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let path =
      NSTemporaryDirectory()
      + "kscope-hostile-layout-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
    try json.serialized().write(toFile: path, atomically: false, encoding: .utf8)
    defer { unlink(path) }
    var reasons: [String] = []
    do {
      let l = try LayoutFile.read(path)
      try l.validate(request: .default)
      Issue.record(
        "read + validate accepted a hostile layout (\(words))", sourceLocation: sourceLocation)
    } catch {
      reasons.append("\(error)")
    }
    do {
      _ = try LayoutFile.importISF(path)
      Issue.record("import accepted a hostile layout (\(words))", sourceLocation: sourceLocation)
    } catch {
      reasons.append("\(error)")
    }
    for r in reasons {
      #expect(r.contains(words), "\(r)", sourceLocation: sourceLocation)
      #expect(!r.contains("\n"), sourceLocation: sourceLocation)
    }
  }

  @Test(arguments: [Recorded.release61, Recorded.release612])
  func recordedLayoutsPass(release: String) throws {
    try Recorded.layout(release).validate(request: .default)
  }

  @Test func hugeNumbersAreRefused() throws {
    let json = try Self.recordedJSON()
    // page.flags at 2^63-1 (made the walker's offset arithmetic trap).
    try refusedEverywhere(
      setting(
        json, ["user_types", "page", "fields", "flags", "offset"], .unsigned(UInt64(Int64.max))),
      "not an offset")
    // mem_section of 2^62 bytes (made pageSize / size zero, then a division by zero).
    try refusedEverywhere(
      setting(json, ["user_types", "mem_section", "size"], .unsigned(1 << 62)), "not a size")
    // An array of 2^62 elements (made `layout show` multiply past Int.max).
    try refusedEverywhere(
      setting(
        json, ["user_types", "task_struct", "fields", "comm", "type"],
        .object([
          "kind": .string("array"), "count": .unsigned(1 << 62),
          "subtype": .object(["kind": .string("base"), "name": .string("char")]),
        ])),
      "not a count")
  }

  @Test func membersMustLieInsideTheirStruct() throws {
    let json = try Self.recordedJSON()
    // mm_struct.pgd far past the end of mm_struct (silently emptied user-code before).
    try refusedEverywhere(
      setting(json, ["user_types", "mm_struct", "fields", "pgd", "offset"], .unsigned(1 << 22)),
      "outside")
    try refusedEverywhere(
      setting(json, ["user_types", "page", "fields", "flags", "offset"], .unsigned(60)), "end past")
    // A struct page the walkers cannot step through.
    try refusedEverywhere(setting(json, ["user_types", "page", "size"], .unsigned(0)), "page")
    try refusedEverywhere(
      setting(json, ["user_types", "mem_section", "size"], .unsigned(1 << 20)), "mem_section")
  }

  @Test func requiredTypesAndMembersAreChecked() throws {
    let json = try Self.recordedJSON()
    for type in ["inode", "address_space", "list_head", "folio"] {
      try refusedEverywhere(setting(json, ["user_types", type], nil), type)
    }
    try refusedEverywhere(setting(json, ["user_types", "page", "fields", "lru"], nil), "page.lru")
  }

  @Test func namesWithControlCharactersAreRefused() throws {
    let json = try Self.recordedJSON()
    let page = try #require(json["user_types"]?["page"]?["fields"]?["flags"])
    try refusedEverywhere(
      setting(json, ["user_types", "page", "fields", "x\u{1b}[2J"], page), "control characters")
  }

  @Test func showDoesNotTrapOnHugeArrays() {
    var l = KernelLayout()
    l.baseTypes["char"] = BaseType(size: 1, signed: true, kind: .char)
    let huge = TypeDescriptor.array(count: 1 << 40, of: .array(count: 1 << 40, of: .base("char")))
    #expect(l.byteSize(of: huge) == nil)
    l.userTypes["t"] = UserType(
      kind: .structure, size: 8, members: [Member(name: "x", offset: 0, type: huge)])
    #expect(throws: LayoutError.self) { try l.validateStructure() }
    _ = try? l.describe(type: "t")
  }

  @Test func oversizedAndSpecialFilesAreRefusedBeforeReading() throws {
    let path = NSTemporaryDirectory() + "kscope-big-layout-\(getpid()).json"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    #expect(ftruncate(fd, 200 << 20) == 0)
    close(fd)
    defer { unlink(path) }
    let clock = ContinuousClock()
    let t = clock.now
    #expect { try LayoutFile.read(path) } throws: { "\($0)".contains("more than") }
    #expect(clock.now - t < .seconds(1))
    #expect(throws: DebugInfoError.self) { try LayoutFile.read("/dev/zero") }
  }
}
