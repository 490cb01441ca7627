// Base64 (RFC 4648, with padding) for ISF `constant_data`: Volatility stores the bytes of
// `linux_banner` there and matches them against memory to pick a symbol table.

enum Base64 {
  private static let alphabet = Array(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

  static func encode(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i < bytes.count {
      let b0 = UInt32(bytes[i])
      let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
      let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
      let triple = b0 << 16 | b1 << 8 | b2
      out.append(alphabet[Int(triple >> 18 & 63)])
      out.append(alphabet[Int(triple >> 12 & 63)])
      out.append(i + 1 < bytes.count ? alphabet[Int(triple >> 6 & 63)] : UInt8(ascii: "="))
      out.append(i + 2 < bytes.count ? alphabet[Int(triple & 63)] : UInt8(ascii: "="))
      i += 3
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// The decoded bytes, or nil when `text` is not valid padded base64.
  static func decode(_ text: String) -> [UInt8]? {
    var values: [UInt32] = []
    var padding = 0
    for c in text.utf8 {
      switch c {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(UInt32(c - UInt8(ascii: "A")))
      case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(UInt32(c - UInt8(ascii: "a") + 26))
      case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(UInt32(c - UInt8(ascii: "0") + 52))
      case UInt8(ascii: "+"): values.append(62)
      case UInt8(ascii: "/"): values.append(63)
      case UInt8(ascii: "="):
        padding += 1
        values.append(0)
      default: return nil
      }
    }
    guard values.count % 4 == 0, padding <= 2 else { return nil }
    var out: [UInt8] = []
    var i = 0
    while i < values.count {
      let n = values[i] << 18 | values[i + 1] << 12 | values[i + 2] << 6 | values[i + 3]
      out.append(UInt8(truncatingIfNeeded: n >> 16))
      out.append(UInt8(truncatingIfNeeded: n >> 8))
      out.append(UInt8(truncatingIfNeeded: n))
      i += 4
    }
    out.removeLast(padding)
    return out
  }
}
