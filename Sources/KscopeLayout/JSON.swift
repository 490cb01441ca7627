// A small JSON value with its own reader and writer.
//
// Why not Foundation's JSONSerialization: ISF files carry 64-bit kernel addresses
// (0xffffffff81000000 = 18446744071578845184) that must survive exactly, and our recorded
// layouts are committed to git, so the output must be byte-for-byte deterministic and diffable
// (one struct member per line). Both are easy to guarantee with ~200 lines we own.
// Measured (host/bench/libs/run.sh, a 60 MiB ISF, release): this reader 1.7-1.9 s and 357 MiB peak,
// Foundation's JSONSerialization 5.6-8.1 s and 3.3 GB; forEachMember indexes without decoding.

/// A JSON document. Integers keep full 64-bit precision: non-negative ones as `UInt64`,
/// negative ones as `Int64`.
public enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  case unsigned(UInt64)
  case signed(Int64)
  case double(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  public subscript(key: String) -> JSONValue? {
    if case .object(let members) = self { return members[key] }
    return nil
  }
  public var objectValue: [String: JSONValue]? {
    if case .object(let members) = self { return members }
    return nil
  }
  public var arrayValue: [JSONValue]? {
    if case .array(let items) = self { return items }
    return nil
  }
  public var stringValue: String? {
    if case .string(let s) = self { return s }
    return nil
  }
  public var boolValue: Bool? {
    if case .bool(let b) = self { return b }
    return nil
  }
  /// The value as an unsigned 64-bit integer, when it is a non-negative integer.
  public var uint64Value: UInt64? {
    if case .unsigned(let u) = self { return u }
    return nil
  }
  /// The value as a signed 64-bit integer, when it is an integer that fits.
  public var int64Value: Int64? {
    switch self {
    case .unsigned(let u): return Int64(exactly: u)
    case .signed(let s): return s
    default: return nil
    }
  }
  public var intValue: Int? { int64Value.flatMap { Int(exactly: $0) } }

  /// An integer value from a signed 64-bit integer.
  public static func integer(_ value: Int64) -> JSONValue {
    value < 0 ? .signed(value) : .unsigned(UInt64(value))
  }
  public static func integer(_ value: Int) -> JSONValue { integer(Int64(value)) }
}

// MARK: Writing

extension JSONValue {
  /// Serializes with sorted keys. Objects and arrays nested less than `expandDepth` levels
  /// deep are spread over lines (two-space indent); deeper ones, and small flat objects below
  /// the second level, are written on one line.
  public func serialized(expandDepth: Int = 4) -> String {
    var out = ""
    write(to: &out, depth: 0, expandDepth: expandDepth)
    out += "\n"
    return out
  }

  private var isScalar: Bool {
    switch self {
    case .array, .object: return false
    default: return true
    }
  }

  private func write(to out: inout String, depth: Int, expandDepth: Int) {
    switch self {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .unsigned(let u): out += String(u)
    case .signed(let s): out += String(s)
    case .double(let d): out += d.isFinite ? String(d) : "null"
    case .string(let s): JSONValue.writeString(s, to: &out)
    case .array(let items):
      if items.isEmpty {
        out += "[]"
        return
      }
      let expand = depth < expandDepth
      out += "["
      for (i, item) in items.enumerated() {
        if i > 0 { out += expand ? "," : ", " }
        if expand { out += "\n" + String(repeating: "  ", count: depth + 1) }
        item.write(to: &out, depth: depth + 1, expandDepth: expandDepth)
      }
      if expand { out += "\n" + String(repeating: "  ", count: depth) }
      out += "]"
    case .object(let members):
      if members.isEmpty {
        out += "{}"
        return
      }
      // Small flat objects (a base type, a symbol) read best on one line.
      let flat = members.count <= 4 && members.values.allSatisfy { $0.isScalar }
      let expand = depth < expandDepth && !(flat && depth >= 2)
      out += "{"
      for (i, key) in members.keys.sorted().enumerated() {
        if i > 0 { out += expand ? "," : ", " }
        if expand { out += "\n" + String(repeating: "  ", count: depth + 1) }
        JSONValue.writeString(key, to: &out)
        out += ": "
        members[key]!.write(to: &out, depth: depth + 1, expandDepth: expandDepth)
      }
      if expand { out += "\n" + String(repeating: "  ", count: depth) }
      out += "}"
    }
  }

  private static func writeString(_ s: String, to out: inout String) {
    out += "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          let digits = String(scalar.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    out += "\""
  }
}

// MARK: Reading

/// Why a JSON text could not be read, with the byte offset where reading stopped.
public struct JSONParseError: Error, Equatable, CustomStringConvertible {
  public let offset: Int
  public let reason: String
  public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSONValue {
  /// Parses one JSON document (RFC 8259) from UTF-8 bytes.
  public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
    try parse(bytes, range: 0..<bytes.count)
  }

  /// Parses the one JSON document in `bytes[range]` (offsets in errors count from the start
  /// of `bytes`).
  public static func parse(_ bytes: [UInt8], range: Range<Int>) throws(JSONParseError)
    -> JSONValue
  {
    guard range.lowerBound >= 0, range.upperBound <= bytes.count else {
      throw JSONParseError(offset: range.lowerBound, reason: "range outside the text")
    }
    var reader = JSONReader(bytes: bytes, position: range.lowerBound, end: range.upperBound)
    reader.skipSpace()
    let value = try reader.value(depth: 0)
    reader.skipSpace()
    guard reader.position == range.upperBound else { throw reader.error("trailing characters") }
    return value
  }

  /// Checks that `bytes` hold one JSON document, as `parse` would, without building it (the
  /// same errors at the same offsets); true when the document is an object.
  public static func check(_ bytes: [UInt8]) throws(JSONParseError) -> Bool {
    var reader = JSONReader(bytes: bytes, position: 0, end: bytes.count)
    reader.skipSpace()
    let isObject = reader.position < reader.end && bytes[reader.position] == UInt8(ascii: "{")
    try reader.skip(depth: 0)
    reader.skipSpace()
    guard reader.position == bytes.count else { throw reader.error("trailing characters") }
    return isObject
  }

  /// Walks the JSON object in `bytes[range]` without decoding its values: `body` gets each
  /// member's key and the byte range of its value, which `parse(_:range:)` can decode later.
  /// The syntax of the whole object is checked, values included, with the same grammar and
  /// depth limit as `parse`, but nothing but the keys is allocated: a 64 MiB ISF is indexed
  /// in a few MiB and only the entries wanted are decoded (issue 10: memory within 2x input).
  public static func forEachMember(
    in bytes: [UInt8], range: Range<Int>,
    _ body: (String, Range<Int>) throws(JSONParseError) -> Void
  ) throws(JSONParseError) {
    guard range.lowerBound >= 0, range.upperBound <= bytes.count else {
      throw JSONParseError(offset: range.lowerBound, reason: "range outside the text")
    }
    var reader = JSONReader(bytes: bytes, position: range.lowerBound, end: range.upperBound)
    reader.skipSpace()
    guard reader.position < reader.end, bytes[reader.position] == UInt8(ascii: "{") else {
      throw reader.error("expected an object")
    }
    try reader.elements(decodingKeys: true) { (reader, key) throws(JSONParseError) in
      let start = reader.position
      try reader.skip(depth: 1)
      try body(key, start..<reader.position)
    }
    reader.skipSpace()
    guard reader.position == range.upperBound else { throw reader.error("trailing characters") }
  }

  public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
    try parse(Array(text.utf8))
  }
}

private struct JSONReader {
  let bytes: [UInt8]
  var position = 0
  /// Where the text ends (a document may be a slice of `bytes`).
  let end: Int
  /// Nesting deeper than this is rejected instead of overflowing the stack.
  static let maxDepth = 256

  func error(_ reason: String) -> JSONParseError {
    JSONParseError(offset: position, reason: reason)
  }

  mutating func skipSpace() {
    while position < end {
      switch bytes[position] {
      case 0x20, 0x09, 0x0A, 0x0D: position += 1
      default: return
      }
    }
  }

  mutating func expect(_ literal: String, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
    for byte in literal.utf8 {
      guard position < end, bytes[position] == byte else {
        throw error("expected '\(literal)'")
      }
      position += 1
    }
    return value
  }

  mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
    guard depth < JSONReader.maxDepth else { throw error("nested too deeply") }
    guard position < end else { throw error("unexpected end of input") }
    switch bytes[position] {
    case UInt8(ascii: "{"): return try object(depth: depth)
    case UInt8(ascii: "["): return try array(depth: depth)
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): return try expect("true", .bool(true))
    case UInt8(ascii: "f"): return try expect("false", .bool(false))
    case UInt8(ascii: "n"): return try expect("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
    default: throw error("unexpected character")
    }
  }

  mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
    var members: [String: JSONValue] = [:]
    try elements(decodingKeys: true) { (reader, key) throws(JSONParseError) in
      members[key] = try reader.value(depth: depth + 1)
    }
    return .object(members)
  }

  mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
    var items: [JSONValue] = []
    try elements(decodingKeys: false) { (reader, _) throws(JSONParseError) in
      items.append(try reader.value(depth: depth + 1))
    }
    return .array(items)
  }

  /// Walks the object or array that starts at `position`, checking its brackets, keys and
  /// separators, and hands each member's value (after its key, decoded when `decodingKeys`,
  /// else "") or each item to `element`, which must move past it. Building, skipping and
  /// indexing share this one walk, so they cannot disagree about what is valid.
  mutating func elements(
    decodingKeys: Bool, _ element: (inout JSONReader, String) throws(JSONParseError) -> Void
  ) throws(JSONParseError) {
    let isObject = bytes[position] == UInt8(ascii: "{")
    let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
    position += 1
    skipSpace()
    if position < end, bytes[position] == close {
      position += 1
      return
    }
    while true {
      skipSpace()
      var key = ""
      if isObject {
        guard position < end, bytes[position] == UInt8(ascii: "\"") else {
          throw error("expected a string key")
        }
        if decodingKeys { key = try string() } else { try skipString() }
        skipSpace()
        guard position < end, bytes[position] == UInt8(ascii: ":") else {
          throw error("expected ':'")
        }
        position += 1
        skipSpace()
      }
      try element(&self, key)
      skipSpace()
      guard position < end else { throw error("unexpected end of input") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
        continue
      }
      guard bytes[position] == close else {
        throw error(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
      }
      position += 1
      return
    }
  }

  /// Moves past one value, checking it as `value` would, without building it.
  mutating func skip(depth: Int) throws(JSONParseError) {
    guard depth < JSONReader.maxDepth else { throw error("nested too deeply") }
    guard position < end else { throw error("unexpected end of input") }
    let open = bytes[position]
    switch open {
    case UInt8(ascii: "{"), UInt8(ascii: "["):
      try elements(decodingKeys: false) { (reader, _) throws(JSONParseError) in
        try reader.skip(depth: depth + 1)
      }
    case UInt8(ascii: "\""): try skipString()
    default: _ = try value(depth: depth)  // literals and numbers allocate nothing
    }
  }

  /// Moves past a string, checking it as `string` does, without building it.
  mutating func skipString() throws(JSONParseError) {
    var unused: [UInt8] = []
    try scanString(keeping: false, into: &unused)
  }

  mutating func string() throws(JSONParseError) -> String {
    var utf8: [UInt8] = []
    try scanString(keeping: true, into: &utf8)
    return String(decoding: utf8, as: UTF8.self)
  }

  /// Moves past the string at `position`, checking its escapes; when `keeping`, appends its
  /// decoded UTF-8 to `utf8`. One scan for both, so a skipped string is valid exactly when a
  /// decoded one would be.
  mutating func scanString(keeping: Bool, into utf8: inout [UInt8]) throws(JSONParseError) {
    position += 1  // opening quote
    while true {
      guard position < end else { throw error("unterminated string") }
      let c = bytes[position]
      position += 1
      switch c {
      case UInt8(ascii: "\""):
        return
      case UInt8(ascii: "\\"):
        guard position < end else { throw error("unterminated escape") }
        let e = bytes[position]
        position += 1
        let decoded: UInt8
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded = e
        case UInt8(ascii: "b"): decoded = 0x08
        case UInt8(ascii: "f"): decoded = 0x0C
        case UInt8(ascii: "n"): decoded = 0x0A
        case UInt8(ascii: "r"): decoded = 0x0D
        case UInt8(ascii: "t"): decoded = 0x09
        case UInt8(ascii: "u"):
          var code = try hex4()
          if (0xD800..<0xDC00).contains(code) {
            // A high surrogate must be followed by an escaped low surrogate.
            guard position + 2 <= end, bytes[position] == UInt8(ascii: "\\"),
              bytes[position + 1] == UInt8(ascii: "u")
            else { throw error("unpaired surrogate") }
            position += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
          if keeping { utf8.append(contentsOf: Array(String(Character(scalar)).utf8)) }
          continue
        default: throw error("invalid escape")
        }
        if keeping { utf8.append(decoded) }
      default:
        guard c >= 0x20 else { throw error("control character in string") }
        if keeping { utf8.append(c) }
      }
    }
  }

  mutating func hex4() throws(JSONParseError) -> UInt32 {
    guard position + 4 <= end else { throw error("short \\u escape") }
    var v: UInt32 = 0
    for _ in 0..<4 {
      let c = bytes[position]
      let digit: UInt32
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
      default: throw error("bad hex digit in \\u escape")
      }
      v = v << 4 | digit
      position += 1
    }
    return v
  }

  mutating func number() throws(JSONParseError) -> JSONValue {
    let start = position
    var negative = false
    if bytes[position] == UInt8(ascii: "-") {
      negative = true
      position += 1
    }
    var magnitude: UInt64 = 0
    var overflow = false
    var digits = 0
    while position < end, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
      let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
      let (m2, o2) = m1.addingReportingOverflow(UInt64(bytes[position] - UInt8(ascii: "0")))
      magnitude = m2
      overflow = overflow || o1 || o2
      digits += 1
      position += 1
    }
    guard digits > 0 else { throw error("expected digits") }
    var isInteger = true
    while position < end {
      let c = bytes[position]
      if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
        || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
      {
        isInteger = false
        position += 1
      } else {
        break
      }
    }
    if isInteger && !overflow {
      if !negative { return .unsigned(magnitude) }
      if magnitude == 0 { return .unsigned(0) }
      if magnitude <= UInt64(Int64.max) { return .signed(-Int64(magnitude)) }
      if magnitude == UInt64(Int64.max) + 1 { return .signed(Int64.min) }
    }
    let text = String(decoding: bytes[start..<position], as: UTF8.self)
    guard let d = Double(text) else { throw error("invalid number '\(text)'") }
    return .double(d)
  }
}
