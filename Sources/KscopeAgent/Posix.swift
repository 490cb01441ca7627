import KscopeOS

#if canImport(Glibc)
  import Glibc
#endif

/// The few file-level system calls the agent needs beyond KscopeOS.Files: positioned reads,
/// streaming line reads, directory listings. EINTR is retried by KscopeOS's one loop.
enum Posix {
  @inline(__always)
  static func retrying<T: BinaryInteger>(_ call: () -> T) -> T { Files.retrying(call) }

  static func errorText(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

  /// Opens a file read-only; nil (and errno set) on failure.
  static func openRead(_ path: String, extraFlags: Int32 = 0) -> Int32? {
    let fd = retrying { open(path, O_RDONLY | O_CLOEXEC | extraFlags) }
    return fd >= 0 ? fd : nil
  }

  /// Reads up to `count` bytes at `offset` into `buffer` (from index 0); returns bytes read
  /// (short only at end of file), or nil on error.
  static func pread(_ fd: Int32, _ buffer: inout [UInt8], count: Int, offset: UInt64) -> Int? {
    precondition(count <= buffer.count)
    var done = 0
    while done < count {
      let n = buffer.withUnsafeMutableBytes { b in
        retrying { Glibc.pread(fd, b.baseAddress! + done, count - done, off_t(truncatingIfNeeded: offset &+ UInt64(done))) }
      }
      if n < 0 { return nil }
      if n == 0 { break }
      done += n
    }
    return done
  }

  /// Reads sequentially into `buffer` until it is full or the file ends; bytes read or nil.
  static func readFull(_ fd: Int32, _ buffer: inout [UInt8], count: Int) -> Int? {
    var done = 0
    while done < count {
      let n = buffer.withUnsafeMutableBytes { b in retrying { Glibc.read(fd, b.baseAddress! + done, count - done) } }
      if n < 0 { return nil }
      if n == 0 { break }
      done += n
    }
    return done
  }

  /// Calls `body` with each line of a file (without the newline), reading 64 KiB at a time so a
  /// large file (/proc/kallsyms is several MB) never sits in memory whole. Lines longer than
  /// the buffer are cut. Returns false when the file cannot be opened or read.
  @discardableResult
  static func forEachLine(_ path: String, _ body: (ArraySlice<UInt8>) -> Bool) -> Bool {
    guard let fd = openRead(path) else { return false }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    var filled = 0
    while true {
      let n = buffer.withUnsafeMutableBytes { b in
        retrying { Glibc.read(fd, b.baseAddress! + filled, b.count - filled) }
      }
      if n < 0 { return false }
      let end = filled + n
      var start = 0
      var i = 0
      while i < end {
        if buffer[i] == 0x0A {
          if !body(buffer[start..<i]) { return true }
          start = i + 1
        }
        i += 1
      }
      if n == 0 {
        if start < end { _ = body(buffer[start..<end]) }
        return true
      }
      if start == 0 && end == buffer.count {
        // A line longer than the buffer: hand over what we have and start afresh.
        if !body(buffer[0..<end]) { return true }
        filled = 0
      } else {
        let rest = end - start
        for j in 0..<rest { buffer[j] = buffer[start + j] }
        filled = rest
      }
    }
  }

  /// One directory entry: its name and type (DT_* values; DT_UNKNOWN on some filesystems).
  struct DirectoryEntry {
    var name: String
    var type: UInt8
  }

  /// The entries of a directory, without "." and "..". Empty when it cannot be read.
  static func listDirectory(_ path: String) -> [DirectoryEntry] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var out: [DirectoryEntry] = []
    while let e = readdir(dir) {
      let name = withUnsafePointer(to: &e.pointee.d_name) { p in
        p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
      }
      if name == "." || name == ".." { continue }
      out.append(DirectoryEntry(name: name, type: e.pointee.d_type))
    }
    return out
  }

  /// The CPU time this process has used, in nanoseconds (CLOCK_PROCESS_CPUTIME_ID).
  static func processCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
  }

  /// Monotonic time in nanoseconds.
  static func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
  }

  /// The peak resident set size in KiB (getrusage's ru_maxrss).
  static func peakRSSKiB() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Int(u.ru_maxrss)
  }

  /// The current resident set size in KiB (/proc/self/statm's second field).
  static func currentRSSKiB() -> Int? {
    guard let text = Files.readText("/proc/self/statm", limit: 4096) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(getpagesize()) / 1024
  }

  static func unixTime() -> Int64 { Int64(time(nil)) }

  /// uname -r.
  static func kernelRelease() -> String {
    var u = utsname()
    uname(&u)
    return withUnsafePointer(to: &u.release) { p in
      p.withMemoryRebound(to: CChar.self, capacity: 65) { String(cString: $0) }
    }
  }
}
