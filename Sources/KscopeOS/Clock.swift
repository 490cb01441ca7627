#if canImport(Glibc)
  import Glibc
#endif

/// The one monotonic clock (CLOCK_MONOTONIC: not moved by date changes, stopped while the
/// host sleeps), for durations, deadlines and benchmarks.
public enum MonotonicClock {
  /// Nanoseconds since an arbitrary fixed point.
  @inline(__always)
  public static func nanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
  }

  /// Seconds since an arbitrary fixed point.
  @inline(__always)
  public static func seconds() -> Double { Double(nanoseconds()) / 1e9 }
}

/// What this process has used so far.
public enum ProcessUsage {
  /// CPU time of the whole process (all threads), in nanoseconds.
  public static func cpuNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
  }

  /// Peak resident set size in KiB (getrusage's ru_maxrss).
  public static func peakRSSKiB() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
  }

  /// This process's id.
  public static var id: Int32 { getpid() }

  /// The running executable's path (/proc/self/exe), or argv[0].
  public static func executablePath() -> String {
    var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = buffer.withUnsafeMutableBytes {
      readlink("/proc/self/exe", $0.baseAddress!, $0.count - 1)
    }
    return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : CommandLine.arguments[0]
  }

  /// An environment variable, or nil.
  public static func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
  }
}
