// What `kscope layout show` prints, as text or JSON.

public enum LayoutReport {
  public static func text(_ layout: KernelLayout, type: String?, file: String) throws(LayoutError)
    -> String
  {
    if let type { return try layout.describe(type: type) }
    return "file:      \(file)\n" + layout.summary()
  }

  public static func json(_ layout: KernelLayout, type: String?, file: String) throws(LayoutError)
    -> JSONValue
  {
    guard let type else {
      var symbols: [String: JSONValue] = [:]
      for (name, symbol) in layout.symbols { symbols[name] = .string(symbol.address.description) }
      return .object([
        "file": .string(file), "release": layout.release.map(JSONValue.string) ?? .null,
        "build_id": layout.buildID.map(JSONValue.string) ?? .null,
        "structs": .array(layout.userTypes.keys.sorted().map(JSONValue.string)),
        "enums": .array(layout.enums.keys.sorted().map(JSONValue.string)),
        "symbols": .object(symbols),
      ])
    }
    if let userType = layout.userTypes[type] {
      let members: [JSONValue] = userType.members.map { member in
        var fields: [String: JSONValue] = [
          "name": .string(member.name), "offset": .integer(member.offset),
          "type": .string(layout.cDeclaration(member.type, "").trimmingCharacters()),
        ]
        if let size = layout.byteSize(of: member.type) { fields["size"] = .integer(size) }
        if let bits = member.bitfield {
          fields["bit_position"] = .integer(bits.position)
          fields["bit_length"] = .integer(bits.length)
        }
        return .object(fields)
      }
      return .object([
        "name": .string(type), "kind": .string(userType.kind.rawValue),
        "size": .integer(userType.size),
        "members": .array(members),
      ])
    }
    if let enumType = layout.enums[type] {
      return .object([
        "name": .string(type), "kind": .string("enum"), "size": .integer(enumType.size),
        "base": .string(enumType.base),
        "constants": .object(enumType.constants.mapValues { .integer($0) }),
      ])
    }
    throw .missingType(type)
  }

  public static func summaryJSON(_ layout: KernelLayout, file: String, bytes: Int) -> JSONValue {
    .object([
      "file": .string(file), "bytes": .integer(bytes),
      "release": layout.release.map(JSONValue.string) ?? .null,
      "build_id": layout.buildID.map(JSONValue.string) ?? .null,
      "structs": .integer(layout.userTypes.count),
      "enums": .integer(layout.enums.count), "symbols": .integer(layout.symbols.count),
    ])
  }
}

extension String {
  /// Without leading and trailing spaces (KscopeLayout does not import Foundation).
  func trimmingCharacters() -> String {
    var s = Substring(self)
    while s.first == " " { s.removeFirst() }
    while s.last == " " { s.removeLast() }
    return String(s)
  }
}
