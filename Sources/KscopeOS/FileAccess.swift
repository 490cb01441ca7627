#if canImport(Glibc)
  import Glibc
#endif

// Descriptor-level file access for callers that stream or seek (the guest agent's /proc and
// /sys readers): positioned reads, line-by-line reads, small writes to existing files. Failures
// return nil or false and leave errno for `Files.lastErrorText`, as these callers report a
// problem and go on rather than stop.
extension Files {
  /// Opens `path` read-only and close-on-exec; nil (errno set) on failure. `noFollow` refuses a
  /// symbolic link at the path; `nonBlocking` does not wait on a FIFO; `noAccessTime` does not
  /// update the access time (root or the owner only: it fails with EPERM otherwise).
  public static func openRead(
    _ path: String, noFollow: Bool = false, nonBlocking: Bool = false, noAccessTime: Bool = false
  ) -> Int32? {
    var flags = O_RDONLY | O_CLOEXEC
    if noFollow { flags |= O_NOFOLLOW }
    if nonBlocking { flags |= O_NONBLOCK }
    // O_NOATIME: Swift's Glibc module does not export it.
    if noAccessTime { flags |= 0o1_000_000 }
    let fd = retrying { open(path, flags) }
    return fd >= 0 ? fd : nil
  }

  /// Closes a descriptor this process owns (its error is of no use: the descriptor is gone).
  public static func closeDescriptor(_ fd: Int32) { _ = Glibc.close(fd) }

  /// The system's text for the last failed call's errno (or for `code`).
  public static func lastErrorText(_ code: Int32? = nil) -> String {
    String(cString: strerror(code ?? errno))
  }

  /// The last failed call's errno.
  public static var lastErrno: Int32 { errno }

  /// Reads up to `count` bytes at `offset` into `buffer` (from index 0); returns the bytes read
  /// (short only at end of file), or nil on error.
  public static func read(_ fd: Int32, into buffer: inout [UInt8], count: Int, at offset: UInt64)
    -> Int?
  {
    guard count >= 0, count <= buffer.count else { return nil }
    var done = 0
    while done < count {
      let n = buffer.withUnsafeMutableBytes { b in
        retrying {
          pread(
            fd, b.baseAddress! + done, count - done,
            off_t(truncatingIfNeeded: offset &+ UInt64(done)))
        }
      }
      if n < 0 { return nil }
      if n == 0 { break }
      done += n
    }
    return done
  }

  /// Calls `body` with each line of a file (without the newline), reading 64 KiB at a time so a
  /// large file (/proc/kallsyms is several MB) never sits in memory whole; `body` returns false
  /// to stop. Lines longer than the buffer are cut. Returns false when the file cannot be opened
  /// or read.
  @discardableResult
  public static func forEachLine(_ path: String, _ body: (ArraySlice<UInt8>) -> Bool) -> Bool {
    guard let fd = openRead(path) else { return false }
    defer { closeDescriptor(fd) }
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

  /// Writes `bytes` to an existing file without creating or truncating it, in one write (a
  /// sysfs attribute such as a PCI device's `enable` takes its value in one write).
  public static func writeExisting(_ bytes: [UInt8], to path: String) throws(FileError) {
    let fd = retrying { open(path, O_WRONLY | O_CLOEXEC) }
    guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
    defer { closeDescriptor(fd) }
    let n = bytes.withUnsafeBytes { b in retrying { write(fd, b.baseAddress, b.count) } }
    guard n == bytes.count else {
      throw FileError(path: path, operation: "write", errno: n < 0 ? errno : EIO)
    }
  }
}

extension FileError {
  /// True when the file (or a directory on its path) does not exist (ENOENT).
  public var isNoSuchFile: Bool { errno == ENOENT }
}
