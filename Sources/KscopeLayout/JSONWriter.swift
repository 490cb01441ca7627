// The JSON writer, into UTF-8 bytes: `serialized` is this decoded, and the ISF writers write
// these bytes as they are. Appending bytes to one reserved array costs a fraction of growing a
// String piece by piece (measured in README, Performance: "Kernel layouts from BTF").

extension JSONValue {
  /// The UTF-8 of `serialized(expandDepth:)` (sorted keys, the same lines), with its newline.
  public func serializedUTF8(expandDepth: Int = 4, capacity: Int = 1 << 16) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(capacity)
    write(to: &out, depth: 0, expandDepth: expandDepth)
    out.append(UInt8(ascii: "\n"))
    return out
  }

  private var isScalarValue: Bool {
    switch self {
    case .array, .object: return false
    default: return true
    }
  }

  private func write(to out: inout [UInt8], depth: Int, expandDepth: Int) {
    switch self {
    case .null: out += "null".utf8
    case .bool(let b): out += (b ? "true" : "false").utf8
    case .unsigned(let u): Self.writeDecimal(u, to: &out)
    case .signed(let s):
      if s < 0 { out.append(UInt8(ascii: "-")) }
      Self.writeDecimal(s.magnitude, to: &out)
    case .double(let d): out += (d.isFinite ? String(d) : "null").utf8
    case .string(let s): Self.writeString(s, to: &out)
    case .array(let items):
      if items.isEmpty {
        out += "[]".utf8
        return
      }
      let expand = depth < expandDepth
      out.append(UInt8(ascii: "["))
      for (i, item) in items.enumerated() {
        if i > 0 {
          out.append(UInt8(ascii: ","))
          if !expand { out.append(UInt8(ascii: " ")) }
        }
        if expand { Self.newline(depth + 1, to: &out) }
        item.write(to: &out, depth: depth + 1, expandDepth: expandDepth)
      }
      if expand { Self.newline(depth, to: &out) }
      out.append(UInt8(ascii: "]"))
    case .object(let members):
      if members.isEmpty {
        out += "{}".utf8
        return
      }
      // Small flat objects (a base type, a symbol) read best on one line.
      let flat = members.count <= 4 && members.values.allSatisfy { $0.isScalarValue }
      let expand = depth < expandDepth && !(flat && depth >= 2)
      out.append(UInt8(ascii: "{"))
      // Sorted once as (key, value) pairs: no second hash lookup per member.
      for (i, (key, value)) in members.sorted(by: { $0.key < $1.key }).enumerated() {
        if i > 0 {
          out.append(UInt8(ascii: ","))
          if !expand { out.append(UInt8(ascii: " ")) }
        }
        if expand { Self.newline(depth + 1, to: &out) }
        Self.writeString(key, to: &out)
        out.append(UInt8(ascii: ":"))
        out.append(UInt8(ascii: " "))
        value.write(to: &out, depth: depth + 1, expandDepth: expandDepth)
      }
      if expand { Self.newline(depth, to: &out) }
      out.append(UInt8(ascii: "}"))
    }
  }

  private static func newline(_ depth: Int, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\n"))
    for _ in 0..<(2 * depth) { out.append(UInt8(ascii: " ")) }
  }

  private static func writeDecimal(_ value: UInt64, to out: inout [UInt8]) {
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for 20 digits, filled backwards
    var v = value
    var n = 0
    withUnsafeMutableBytes(of: &digits) { d in
      repeat {
        d[23 - n] = UInt8(ascii: "0") + UInt8(v % 10)
        v /= 10
        n += 1
      } while v != 0
      out += d[(24 - n)...]
    }
  }

  /// A JSON string: quote, backslash and control characters escaped, everything else (UTF-8
  /// included) as it is.
  private static func writeString(_ s: String, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    // Names and kinds need no escape: copied whole.
    let escaped = s.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
    if !escaped {
      out += s.utf8
      out.append(UInt8(ascii: "\""))
      return
    }
    for byte in s.utf8 {
      switch byte {
      case UInt8(ascii: "\""): out += "\\\"".utf8
      case UInt8(ascii: "\\"): out += "\\\\".utf8
      case UInt8(ascii: "\n"): out += "\\n".utf8
      case UInt8(ascii: "\r"): out += "\\r".utf8
      case UInt8(ascii: "\t"): out += "\\t".utf8
      case 0..<0x20:
        let hex = Array("0123456789abcdef".utf8)
        out += "\\u00".utf8
        out.append(hex[Int(byte >> 4)])
        out.append(hex[Int(byte & 15)])
      default: out.append(byte)
      }
    }
    out.append(UInt8(ascii: "\""))
  }
}
