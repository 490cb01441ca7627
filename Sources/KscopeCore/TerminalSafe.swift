/// Text that came from a guest, a snapshot or a file name, made safe to print on a terminal:
/// control characters (C0, DEL, C1, bidi overrides) become visible escapes (\n, \x1b, ...), so
/// a hostile path or metadata value cannot move the cursor, recolor the screen or split one
/// line into two. Idempotent (backslashes are left alone), so text escaped twice reads the same.
public enum TerminalSafe {
  public static func escaped(_ text: String) -> String {
    var needs = false
    for s in text.unicodeScalars where isControl(s) {
      needs = true
      break
    }
    guard needs else { return text }
    var out = ""
    out.reserveCapacity(text.utf8.count + 8)
    for s in text.unicodeScalars {
      switch s {
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if isControl(s) {
          let hex = String(s.value, radix: 16)
          out += s.value < 0x100 ? "\\x" + (hex.count < 2 ? "0" : "") + hex : "\\u{\(hex)}"
        } else {
          out.unicodeScalars.append(s)
        }
      }
    }
    return out
  }

  /// C0 controls, DEL, C1 controls, and the bidirectional overrides that reorder what a
  /// terminal shows (U+202A..U+202E, U+2066..U+2069).
  @inline(__always)
  static func isControl(_ s: Unicode.Scalar) -> Bool {
    let v = s.value
    return v < 0x20 || (v >= 0x7f && v < 0xa0) || (v >= 0x202a && v <= 0x202e)
      || (v >= 0x2066 && v <= 0x2069)
  }

  /// One line for an error message: escaped, and cut to `limit` characters.
  public static func oneLine(_ text: String, limit: Int = 4096) -> String {
    let e = escaped(text)
    return e.count <= limit ? e : String(e.prefix(limit)) + "..."
  }
}
