import KscopeCore

// Importing another tool's ISF (dwarf2json: tens of MB, every type of the kernel) without
// decoding all of it. The text is indexed first (each user type, enum and the sections, by
// byte range; syntax checked throughout, nothing decoded), then only the entries the request
// reaches are decoded, with the same decoder and checks as a whole file. Decoding the whole
// file into JSON values and a layout took ~7x the file's size in memory (61 MB -> 412 MiB);
// the index keeps it within 2x (README, Security).

extension KernelLayout {
  /// The layout of `request` from ISF text: the same result as `KernelLayout(isfBytes:)`
  /// followed by `restricted(to:keepReferenced:)` with the producer's rule (our own files keep
  /// every referenced type they hold; other producers' anonymous `unnamed_*` types are kept),
  /// but only the reached entries are decoded. Entries that are never reached are still
  /// checked as JSON, not as ISF.
  public static func importing(isfBytes bytes: [UInt8], request: LayoutRequest)
    throws(LayoutError) -> KernelLayout
  {
    do {
      return try importing(bytes, request: request)
    } catch let error as JSONParseError {
      throw .invalidISF(path: "$", reason: error.description)
    } catch let error as LayoutError {
      throw error
    } catch {
      throw .invalidISF(path: "$", reason: "\(error)")
    }
  }

  private static func importing(_ bytes: [UInt8], request: LayoutRequest) throws -> KernelLayout {
    var top: [String: Range<Int>] = [:]
    do {
      try JSONValue.forEachMember(in: bytes, range: 0..<bytes.count) { key, range in
        top[key] = range
      }
    } catch {
      // Bad JSON, or not an object: checked without building the document.
      if try !JSONValue.check(bytes) {
        throw LayoutError.invalidISF(path: "$", reason: "not a JSON object")
      }
      throw error
    }
    var sections: [String: Range<Int>] = [:]
    for key in ["metadata", "base_types", "user_types", "enums", "symbols"] {
      guard let range = top[key], bytes[range.lowerBound] == UInt8(ascii: "{") else {
        throw LayoutError.invalidISF(path: key, reason: "missing or not an object")
      }
      sections[key] = range
    }
    let metadata = try JSONValue.parse(bytes, range: sections["metadata"]!)
    let baseTypes = try JSONValue.parse(bytes, range: sections["base_types"]!)
    var userIndex: [String: Range<Int>] = [:]
    try JSONValue.forEachMember(in: bytes, range: sections["user_types"]!) { userIndex[$0] = $1 }
    var enumIndex: [String: Range<Int>] = [:]
    try JSONValue.forEachMember(in: bytes, range: sections["enums"]!) { enumIndex[$0] = $1 }
    let wantedSymbols = Set(
      request.symbols + request.optionalSymbols + [
        LayoutSymbolName.banner, LayoutSymbolName.buildID,
      ])
    var symbols: [String: JSONValue] = [:]
    try JSONValue.forEachMember(in: bytes, range: sections["symbols"]!) {
      (name, range) throws(JSONParseError) in
      if wantedSymbols.contains(name) { symbols[name] = try JSONValue.parse(bytes, range: range) }
    }
    func document(_ users: [String: JSONValue], _ enums: [String: JSONValue]) -> JSONValue {
      .object([
        "metadata": metadata, "base_types": baseTypes, "user_types": .object(users),
        "enums": .object(enums), "symbols": .object(symbols),
      ])
    }
    // The release (from the banner) decides which enums the request needs.
    let identity = try KernelLayout(isf: document([:], [:]))
    let ours = identity.producer.name == KernelLayout.producerName
    let keep: (String) -> Bool =
      ours ? { userIndex[$0] != nil || enumIndex[$0] != nil } : { $0.hasPrefix("unnamed_") }

    var users: [String: JSONValue] = [:]
    var enums: [String: JSONValue] = [:]
    var pending =
      request.types + request.enumsToFind(release: identity.release) + [
        PageTypeEncoding.ruleEnumName
      ]
    while let name = pending.popLast() {
      if users[name] != nil || enums[name] != nil { continue }
      if let range = userIndex[name] {
        let value = try JSONValue.parse(bytes, range: range)
        users[name] = value
        for (_, field) in value["fields"]?.objectValue ?? [:] {
          // Anonymous members are flattened from their type, whatever its name: always kept.
          let anonymous = field["anonymous"]?.boolValue == true
          referencedTypes(field["type"]) { if anonymous || keep($0) { pending.append($0) } }
        }
      } else if let range = enumIndex[name] {
        enums[name] = try JSONValue.parse(bytes, range: range)
      }
    }
    let selected = try KernelLayout(isf: document(users, enums))
    try selected.validateStructure()
    return try selected.restricted(
      to: request,
      keepReferenced: ours ? { selected.userTypes[$0] != nil || selected.enums[$0] != nil } : keep)
  }

  /// The struct, union and enum names a type descriptor (ISF JSON) refers to.
  private static func referencedTypes(_ value: JSONValue?, depth: Int = 0, _ body: (String) -> Void)
  {
    guard let value, depth < 64, let kind = value["kind"]?.stringValue else { return }
    switch kind {
    case "struct", "class", "union", "enum":
      if let name = value["name"]?.stringValue { body(name) }
    case "pointer", "array": referencedTypes(value["subtype"], depth: depth + 1, body)
    case "bitfield": referencedTypes(value["type"], depth: depth + 1, body)
    default: break
    }
  }
}
