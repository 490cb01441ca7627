import KscopeCore

/// Text and JSON renderings of color maps shared by the CLI and the benchmarks.
public enum Describe {
  /// Map metadata, paths and names come from whoever wrote the map (a guest, another host):
  /// text output shows them with control characters escaped.
  public static func safe(_ text: String) -> String { TerminalSafe.escaped(text) }

  /// "12.5" MiB for a frame count.
  public static func mib(_ frames: UInt64, pageSize: UInt32) -> String {
    let v = Double(frames) * Double(pageSize) / 1_048_576
    return formatFixed(v, digits: 1)
  }

  public static func formatFixed(_ v: Double, digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
      let decimals = s.distance(from: dot, to: s.endIndex) - 1
      if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    } else if digits > 0 {
      s += "." + String(repeating: "0", count: digits)
    }
    return s
  }

  /// Pads to a width (left-aligned text, or right-aligned numbers).
  public static func pad(_ s: String, _ w: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, w - s.count))
    return right ? fill + s : s + fill
  }

  /// The per-color table of `map info` (like page-types' summary): color, pages, MiB, share.
  public static func colorTable(_ map: ColorMap) -> [String] {
    var lines = [
      pad("color", 14) + pad("pages", 12, right: true) + pad("MiB", 11, right: true)
        + pad("%", 8, right: true) + "  clone action"
    ]
    let total = max(map.frameCount, 1)
    for c in Color.allCases where map.count(of: c) > 0 {
      let n = map.count(of: c)
      lines.append(
        pad(c.name, 14) + pad(String(n), 12, right: true)
          + pad(mib(n, pageSize: map.header.pageSize), 11, right: true)
          + pad(formatFixed(Double(n) * 100 / Double(total), digits: 2), 8, right: true)
          + "  " + c.cloneAction.rawValue)
    }
    lines.append(
      pad("total", 14) + pad(String(map.frameCount), 12, right: true)
        + pad(mib(map.frameCount, pageSize: map.header.pageSize), 11, right: true)
        + pad("100.00", 8, right: true))
    return lines
  }

  /// Color name -> frame count, for every color (zeros included, so keys are stable).
  public static func colorCounts(_ map: ColorMap) -> [String: UInt64] {
    var d: [String: UInt64] = [:]
    for c in Color.allCases { d[c.name] = map.count(of: c) }
    return d
  }

  /// Civil UTC time "2026-11-26T04:30:00Z" from Unix seconds (no Foundation in the core path).
  /// Times outside years 0..9999 (a forged header) are printed as the raw number.
  public static func utc(_ seconds: Int64) -> String {
    guard seconds >= -62_167_219_200, seconds <= 253_402_300_799 else { return "\(seconds) (seconds since 1970, out of range)" }
    let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
    let rem = seconds - days * 86400
    // Days to civil date (proleptic Gregorian), after H. Hinnant's public-domain algorithm.
    let z = days + 719468
    let era = (z >= 0 ? z : z - 146096) / 146097
    let doe = z - era * 146097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(y)-\(two(m))-\(two(d))T\(two(rem / 3600)):\(two(rem % 3600 / 60)):\(two(rem % 60))Z"
  }
}
