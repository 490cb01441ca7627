import ExtrasBase64
import KscopeCore

// Kernel layouts as Volatility 3 ISF JSON (schema 6.x: metadata, base_types, user_types,
// enums, symbols), and back. We write only what the schema allows, so Volatility reads our
// files; facts ISF has no field for travel as symbols (see LayoutSymbolName).

extension KernelLayout {
  /// The ISF format version we write (the one dwarf2json writes).
  public static let isfFormat = "6.2.0"

  // MARK: Writing

  public func isfJSON() -> JSONValue {
    let items: [JSONValue] = sources.map {
      .object(["kind": .string($0.kind), "name": .string($0.name)])
    }
    let metadata: JSONValue = .object([
      "format": .string(KernelLayout.isfFormat),
      "producer": .object(["name": .string(producer.name), "version": .string(producer.version)]),
      "linux": .object(["symbols": .array(items), "types": .array(items)]),
    ])
    var base: [String: JSONValue] = [:]
    for (name, type) in baseTypes {
      base[name] = .object([
        "size": .integer(type.size), "signed": .bool(type.signed),
        "kind": .string(type.kind.rawValue),
        "endian": .string("little"),
      ])
    }
    var user: [String: JSONValue] = [:]
    for (name, type) in userTypes {
      var fields: [String: JSONValue] = [:]
      for member in type.members {
        fields[member.name] = .object([
          "offset": .integer(member.offset), "type": member.type.isfJSON,
        ])
      }
      user[name] = .object([
        "kind": .string(type.kind.rawValue), "size": .integer(type.size), "fields": .object(fields),
      ])
    }
    var enumValues: [String: JSONValue] = [:]
    for (name, type) in enums {
      enumValues[name] = .object([
        "size": .integer(type.size), "base": .string(type.base),
        "constants": .object(type.constants.mapValues { .integer($0) }),
      ])
    }
    var symbolValues: [String: JSONValue] = [:]
    for (name, symbol) in symbols {
      var fields: [String: JSONValue] = ["address": .unsigned(symbol.address.rawValue)]
      if let data = symbol.constantData { fields["constant_data"] = .string(KernelLayout.base64(data)) }
      symbolValues[name] = .object(fields)
    }
    return .object([
      "metadata": metadata, "base_types": .object(base), "user_types": .object(user),
      "enums": .object(enumValues), "symbols": .object(symbolValues),
    ])
  }

  /// The ISF text we commit and write: sorted keys, one member, constant or symbol per line.
  public func isfText() -> String { String(decoding: isfBytes(), as: UTF8.self) }

  /// The same as UTF-8 bytes, what the layout writers write (no String in between).
  public func isfBytes() -> [UInt8] { isfJSON().serializedUTF8(expandDepth: 4) }

  /// ISF `constant_data` (RFC 4648 base64 with padding; Volatility stores `linux_banner`'s
  /// bytes there), through swift-extras-base64.
  static func base64(_ bytes: [UInt8]) -> String { Base64.encodeToString(bytes: bytes) }
  static func bytes(base64 text: String) -> [UInt8]? { try? Base64.decode(string: text) }

  // MARK: Reading

  /// Reads an ISF document (ours or dwarf2json's). Members of anonymous fields
  /// (`"anonymous": true`, dwarf2json's `unnamed_field_*`) are flattened into their parent.
  public init(isf json: JSONValue) throws(LayoutError) {
    guard let root = json.objectValue else {
      throw .invalidISF(path: "$", reason: "not a JSON object")
    }
    for key in ["metadata", "base_types", "user_types", "enums", "symbols"]
    where root[key]?.objectValue == nil {
      throw .invalidISF(path: key, reason: "missing or not an object")
    }
    func section(_ key: String) -> ISFSection {
      let members = root[key]!.objectValue!
      return ISFSection(names: Array(members.keys), value: { members[$0] })
    }
    try self.init(
      metadata: root["metadata"]!, baseTypes: section("base_types"), userTypes: section("user_types"),
      enums: section("enums"), symbols: section("symbols"))
  }

  /// Decodes the sections of an ISF document, each entry when its turn comes: from a JSON
  /// value, or from its byte range in the text (`init(isfBytes:)`), so that only one entry at
  /// a time exists as a JSON value.
  init(
    metadata metadataValue: JSONValue, baseTypes baseSection: ISFSection,
    userTypes userSection: ISFSection, enums enumSection: ISFSection, symbols symbolSection: ISFSection
  ) throws(LayoutError) {
    guard let metadata = metadataValue.objectValue else {
      throw .invalidISF(path: "metadata", reason: "missing or not an object")
    }
    guard let format = metadata["format"]?.stringValue else {
      throw .invalidISF(path: "metadata.format", reason: "missing")
    }
    guard format.hasPrefix("6.") else {
      throw .invalidISF(path: "metadata.format", reason: "version \(format), expected 6.x")
    }
    let producerObject = metadata["producer"]?.objectValue ?? [:]
    let producer = (
      producerObject["name"]?.stringValue ?? "unknown",
      producerObject["version"]?.stringValue ?? "0.0.0"
    )
    var sources: [LayoutSource] = []
    for item in metadata["linux"]?["symbols"]?.arrayValue ?? [] {
      if let kind = item["kind"]?.stringValue, let name = item["name"]?.stringValue {
        sources.append(LayoutSource(kind: kind, name: name))
      }
    }

    var baseTypes: [String: BaseType] = [:]
    for name in baseSection.names {
      let value = try baseSection.entry(name)
      let path = "base_types.\(name)"
      guard let size = value["size"]?.intValue, size >= 0 else {
        throw .invalidISF(path: path + ".size", reason: "not a size")
      }
      guard let kindText = value["kind"]?.stringValue, let kind = BaseKind(rawValue: kindText)
      else {
        throw .invalidISF(path: path + ".kind", reason: "not one of void, int, float, char, bool")
      }
      guard let signed = value["signed"]?.boolValue else {
        throw .invalidISF(path: path + ".signed", reason: "not a boolean")
      }
      if let endian = value["endian"]?.stringValue, endian != "little" {
        throw .invalidISF(
          path: path + ".endian", reason: "\(endian)-endian layouts are not supported")
      }
      baseTypes[name] = BaseType(size: size, signed: signed, kind: kind)
    }

    var userTypes: [String: UserType] = [:]
    userTypes.reserveCapacity(userSection.names.count)
    for name in userSection.names {
      userTypes[name] = try KernelLayout.readUserType(
        name: name, value: try userSection.entry(name), all: userSection, depth: 0)
    }

    var enums: [String: EnumType] = [:]
    for name in enumSection.names {
      let value = try enumSection.entry(name)
      let path = "enums.\(name)"
      guard let size = value["size"]?.intValue else {
        throw .invalidISF(path: path + ".size", reason: "not a size")
      }
      guard let base = value["base"]?.stringValue else {
        throw .invalidISF(path: path + ".base", reason: "missing")
      }
      guard let constantsObject = value["constants"]?.objectValue else {
        throw .invalidISF(path: path + ".constants", reason: "missing or not an object")
      }
      var constants: [String: Int64] = [:]
      for (constant, v) in constantsObject {
        guard let n = v.int64Value else {
          throw .invalidISF(path: "\(path).constants.\(constant)", reason: "not a 64-bit integer")
        }
        constants[constant] = n
      }
      enums[name] = EnumType(size: size, base: base, constants: constants)
    }

    var symbols: [String: Symbol] = [:]
    for name in symbolSection.names {
      let value = try symbolSection.entry(name)
      let path = "symbols.\(name)"
      guard let address = value["address"]?.uint64Value else {
        throw .invalidISF(path: path + ".address", reason: "not an unsigned 64-bit integer")
      }
      var data: [UInt8]? = nil
      if let text = value["constant_data"]?.stringValue {
        guard let bytes = KernelLayout.bytes(base64: text) else {
          throw .invalidISF(path: path + ".constant_data", reason: "not base64")
        }
        data = bytes
      }
      symbols[name] = Symbol(address: KernelVirtualAddress(address), constantData: data)
    }
    self.init(
      producer: producer, sources: sources, baseTypes: baseTypes, userTypes: userTypes,
      enums: enums,
      symbols: symbols)
  }

  /// Parses ISF text (UTF-8 bytes). The text is indexed (syntax checked throughout, nothing
  /// decoded), then each entry is decoded in turn: a whole-document JSON tree took ~6x the
  /// file's size on top of the file itself.
  public init(isfBytes bytes: [UInt8]) throws(LayoutError) {
    var top: [String: Range<Int>] = [:]
    do {
      try JSONValue.forEachMember(in: bytes, range: 0..<bytes.count) { top[$0] = $1 }
    } catch {
      // Bad JSON (said where, as the whole-document reader would), or not an object; checked
      // without building the document, so a bad file costs no more memory than a good one.
      let isObject: Bool
      do { isObject = try JSONValue.check(bytes) } catch {
        throw .invalidISF(path: "$", reason: error.description)
      }
      if !isObject { throw .invalidISF(path: "$", reason: "not a JSON object") }
      throw .invalidISF(path: "$", reason: error.description)
    }
    var sections: [String: ISFSection] = [:]
    for key in ["base_types", "user_types", "enums", "symbols"] {
      guard let range = top[key], bytes[range.lowerBound] == UInt8(ascii: "{") else {
        throw .invalidISF(path: key, reason: "missing or not an object")
      }
      var index: [String: Range<Int>] = [:]
      var names: [String] = []
      do {
        try JSONValue.forEachMember(in: bytes, range: range) { name, r in
          if index.updateValue(r, forKey: name) == nil { names.append(name) }
        }
      } catch { throw .invalidISF(path: "$", reason: error.description) }
      sections[key] = ISFSection(names: names, ranges: index, bytes: bytes)
    }
    guard let metadataRange = top["metadata"], bytes[metadataRange.lowerBound] == UInt8(ascii: "{")
    else { throw .invalidISF(path: "metadata", reason: "missing or not an object") }
    let metadata: JSONValue
    do { metadata = try JSONValue.parse(bytes, range: metadataRange) } catch {
      throw .invalidISF(path: "$", reason: error.description)
    }
    try self.init(
      metadata: metadata, baseTypes: sections["base_types"]!, userTypes: sections["user_types"]!,
      enums: sections["enums"]!, symbols: sections["symbols"]!)
  }

  private static func readUserType(
    name: String, value: JSONValue, all: ISFSection, depth: Int
  ) throws(LayoutError) -> UserType {
    let path = "user_types.\(name)"
    guard depth < 32 else {
      throw .invalidISF(path: path, reason: "anonymous members nest too deeply (a cycle?)")
    }
    guard let kindText = value["kind"]?.stringValue else {
      throw .invalidISF(path: path + ".kind", reason: "missing")
    }
    let kind: UserTypeKind
    switch kindText {
    case "struct", "class": kind = .structure
    case "union": kind = .union
    default:
      throw .invalidISF(path: path + ".kind", reason: "'\(kindText)' is not struct, class or union")
    }
    guard let size = value["size"]?.intValue, size >= 0, size <= KernelLayout.maxTypeSize else {
      throw .invalidISF(path: path + ".size", reason: "not a size")
    }
    guard let fields = value["fields"]?.objectValue else {
      throw .invalidISF(path: path + ".fields", reason: "missing or not an object")
    }
    var members: [Member] = []
    // Exactly as many as there are fields (anonymous ones add more): appending without it
    // leaves up to half of each array unused, a third of a large layout's memory.
    members.reserveCapacity(fields.count)
    for (fieldName, field) in fields {
      let fieldPath = "\(path).fields.\(fieldName)"
      guard let offset = field["offset"]?.intValue, offset >= 0, offset <= KernelLayout.maxTypeSize
      else {
        throw .invalidISF(path: fieldPath + ".offset", reason: "not an offset")
      }
      guard let typeValue = field["type"] else {
        throw .invalidISF(path: fieldPath + ".type", reason: "missing")
      }
      let type = try TypeDescriptor(isf: typeValue, path: fieldPath + ".type")
      if field["anonymous"]?.boolValue == true {
        switch type {
        case .structure(let inner), .union(let inner):
          guard let innerValue = try all.value(inner) else {
            throw .invalidISF(
              path: fieldPath, reason: "anonymous member of unknown type '\(inner)'")
          }
          let innerType = try readUserType(
            name: inner, value: innerValue, all: all, depth: depth + 1)
          for m in innerType.members {
            members.append(Member(name: m.name, offset: offset + m.offset, type: m.type))
          }
          continue
        default:
          continue  // unnamed padding bitfield: nothing to look up
        }
      }
      members.append(Member(name: fieldName, offset: offset, type: type))
    }
    members.sort(by: Member.layoutOrder)
    return UserType(kind: kind, size: size, members: members)
  }

  // MARK: Restricting

  /// The layout restricted to `request` (plus the types the kept ones refer to that
  /// `keepReferenced` accepts, and the base types they use), with the kscope page_type rule
  /// added when the release needs it. Throws `incomplete` naming everything that is missing.
  ///
  /// By default referenced types are kept when they are anonymous (dwarf2json names them
  /// `unnamed_<hash>`): they have no other home. Named ones stay references (ISF allows it).
  public func restricted(
    to request: LayoutRequest, keepReferenced: (String) -> Bool = { $0.hasPrefix("unnamed_") }
  ) throws(LayoutError) -> KernelLayout {
    var result = KernelLayout(producer: producer, sources: sources)
    var pending: [String] = request.types + request.enumsToFind(release: release)
    if let rule = PageTypeEncoding.ruleEnum(forRelease: release) {
      result.enums[PageTypeEncoding.ruleEnumName] = enums[PageTypeEncoding.ruleEnumName] ?? rule
    }
    var descriptors: [TypeDescriptor] = []
    while let name = pending.popLast() {
      if result.userTypes[name] != nil || result.enums[name] != nil { continue }
      if let type = userTypes[name] {
        result.userTypes[name] = type
        for member in type.members { descriptors.append(member.type) }
      } else if let type = enums[name] {
        result.enums[name] = type
        descriptors.append(.base(type.base))
      }
      while let d = descriptors.popLast() {
        switch d {
        case .base(let base):
          if let type = baseTypes[base] { result.baseTypes[base] = type }
        case .pointer(let inner), .array(_, let inner), .bitfield(_, _, let inner):
          descriptors.append(inner)
        case .structure(let n), .union(let n), .enumeration(let n):
          if keepReferenced(n) { pending.append(n) }
        case .function: break
        }
      }
    }
    for name in ["pointer", "void"] {
      if let type = baseTypes[name] { result.baseTypes[name] = type }
    }
    // The banner (release) and build id identify the kernel: always kept when known.
    let identity = [LayoutSymbolName.banner, LayoutSymbolName.buildID]
    for name in request.symbols + request.optionalSymbols + identity {
      if let symbol = symbols[name] { result.symbols[name] = symbol }
    }
    let missing = request.missing(in: result)
    guard missing.isEmpty else { throw .incomplete(missing: missing) }
    return result
  }
}

extension TypeDescriptor {
  var isfJSON: JSONValue {
    switch self {
    case .base(let name): return .object(["kind": .string("base"), "name": .string(name)])
    case .pointer(let inner):
      return .object(["kind": .string("pointer"), "subtype": inner.isfJSON])
    case .array(let count, let inner):
      return .object(["kind": .string("array"), "count": .integer(count), "subtype": inner.isfJSON])
    case .structure(let name): return .object(["kind": .string("struct"), "name": .string(name)])
    case .union(let name): return .object(["kind": .string("union"), "name": .string(name)])
    case .enumeration(let name): return .object(["kind": .string("enum"), "name": .string(name)])
    case .function: return .object(["kind": .string("function")])
    case .bitfield(let position, let length, let storage):
      return .object([
        "kind": .string("bitfield"), "bit_position": .integer(position),
        "bit_length": .integer(length),
        "type": storage.isfJSON,
      ])
    }
  }

  init(isf value: JSONValue, path: String) throws(LayoutError) {
    guard let kind = value["kind"]?.stringValue else {
      throw .invalidISF(path: path + ".kind", reason: "missing")
    }
    func name() throws(LayoutError) -> String {
      guard let n = value["name"]?.stringValue else {
        throw .invalidISF(path: path + ".name", reason: "missing")
      }
      return n
    }
    func subtype(_ key: String) throws(LayoutError) -> TypeDescriptor {
      guard let inner = value[key] else {
        throw .invalidISF(path: "\(path).\(key)", reason: "missing")
      }
      return try TypeDescriptor(isf: inner, path: "\(path).\(key)")
    }
    switch kind {
    case "base": self = .base(try name())
    case "pointer": self = .pointer(try subtype("subtype"))
    case "array":
      guard let count = value["count"]?.intValue, count >= 0, count <= KernelLayout.maxArrayCount
      else {
        throw .invalidISF(path: path + ".count", reason: "not a count")
      }
      self = .array(count: count, of: try subtype("subtype"))
    case "struct", "class": self = .structure(try name())
    case "union": self = .union(try name())
    case "enum": self = .enumeration(try name())
    case "function": self = .function
    case "bitfield":
      guard let position = value["bit_position"]?.intValue,
        let length = value["bit_length"]?.intValue,
        position >= 0, length > 0, position <= KernelLayout.maxBitfieldBits,
        length <= KernelLayout.maxBitfieldBits
      else { throw .invalidISF(path: path, reason: "bitfield without bit_position/bit_length") }
      self = .bitfield(position: position, length: length, storage: try subtype("type"))
    default: throw .invalidISF(path: path + ".kind", reason: "unknown kind '\(kind)'")
    }
  }
}

/// One section of an ISF document (base_types, user_types, enums, symbols): its entry names and
/// each entry's JSON value, decoded when asked for.
struct ISFSection {
  let names: [String]
  let lookup: (String) throws(LayoutError) -> JSONValue?

  init(names: [String], value: @escaping (String) -> JSONValue?) {
    self.names = names
    lookup = { (name) throws(LayoutError) in value(name) }
  }

  /// Entries as byte ranges of `bytes`, decoded on each lookup.
  init(names: [String], ranges: [String: Range<Int>], bytes: [UInt8]) {
    self.names = names
    lookup = { (name) throws(LayoutError) in
      guard let range = ranges[name] else { return nil }
      do throws(JSONParseError) { return try JSONValue.parse(bytes, range: range) } catch {
        throw .invalidISF(path: "$", reason: error.description)
      }
    }
  }

  func value(_ name: String) throws(LayoutError) -> JSONValue? { try lookup(name) }

  /// An entry known to exist (a name from `names`).
  func entry(_ name: String) throws(LayoutError) -> JSONValue { try lookup(name) ?? .null }
}
