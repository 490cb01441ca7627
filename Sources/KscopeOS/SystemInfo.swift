#if canImport(Glibc)
  import Glibc
#endif

/// Facts about the running system and process that are not about files: the page size, the
/// kernel release, wall-clock seconds, the current RSS; and the process's own exit and
/// standard error, for a program without Foundation (the guest agent).
public enum SystemInfo {
  /// The page size (getpagesize).
  public static var pageSize: Int { Int(getpagesize()) }

  /// uname -r.
  public static func kernelRelease() -> String {
    var u = utsname()
    uname(&u)
    return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
  }

  /// Seconds since the Unix epoch (wall clock: for timestamps, never for durations).
  public static func unixTime() -> Int64 { Int64(time(nil)) }

  /// The current resident set size in KiB (/proc/self/statm's second field).
  public static func currentRSSKiB() -> Int? {
    guard let text = Files.readText("/proc/self/statm", limit: 4096) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * pageSize / 1024
  }

  /// Writes `text` to standard error as it is (one write call; short writes are not retried:
  /// a diagnostic line is small).
  public static func writeStandardError(_ text: String) {
    var line = text
    line.withUTF8 { b in _ = Files.retrying { write(2, b.baseAddress, b.count) } }
  }

  /// True when standard error is a terminal (progress lines redraw in place there).
  public static var standardErrorIsTerminal: Bool { isatty(2) == 1 }

  /// Ends the process with `status`.
  public static func exit(_ status: Int32) -> Never { Glibc.exit(status) }
}
