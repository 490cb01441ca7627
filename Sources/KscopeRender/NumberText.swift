/// Number formatting for the legend (no Foundation in this module).
public enum NumberText {
  /// 6815744 -> "6,815,744".
  public static func grouped(_ n: UInt64) -> String {
    let digits = Array(String(n))
    var out = ""
    for (i, d) in digits.enumerated() {
      if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
      out.append(d)
    }
    return out
  }

  /// A non-negative value with `digits` decimals and grouped thousands: "26,624.0".
  public static func fixed(_ v: Double, digits: Int) -> String {
    var scale: UInt64 = 1
    for _ in 0..<digits { scale *= 10 }
    let scaled = UInt64((max(0, v) * Double(scale)).rounded())
    let whole = grouped(scaled / scale)
    guard digits > 0 else { return whole }
    let frac = String(scaled % scale)
    return whole + "." + String(repeating: "0", count: digits - frac.count) + frac
  }

  /// MiB of `frames` pages of `pageSize` bytes, one decimal.
  public static func mib(_ frames: UInt64, pageSize: UInt32) -> String {
    fixed(Double(frames) * Double(pageSize) / 1_048_576, digits: 1)
  }

  /// The share of `part` in `whole` with two decimals and a percent sign; a share that is not
  /// zero but rounds to it reads "<0.01%", so a present class never claims to be absent.
  public static func percent(_ part: UInt64, of whole: UInt64) -> String {
    guard whole > 0 else { return "0.00%" }
    let p = Double(part) * 100 / Double(whole)
    if part > 0 && p < 0.005 { return "<0.01%" }
    return fixed(p, digits: 2) + "%"
  }

  /// A size in bytes in the largest binary unit that divides it: "4 KiB", "2 MiB", "1000 B".
  public static func bytes(_ n: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = n
    var u = 0
    while v >= 1024 && v % 1024 == 0 && u < units.count - 1 {
      v /= 1024
      u += 1
    }
    return "\(grouped(v)) \(units[u])"
  }

  /// A grid label: a size in the largest binary unit that divides it, one letter: "0", "64K",
  /// "512M", "3G", "1T".
  public static func compactBytes(_ n: UInt64) -> String {
    let units = ["", "K", "M", "G", "T", "P"]
    var v = n
    var u = 0
    while v > 0 && v % 1024 == 0 && u < units.count - 1 {
      v /= 1024
      u += 1
    }
    return "\(v)\(units[u])"
  }
}
