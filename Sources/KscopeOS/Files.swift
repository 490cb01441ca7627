#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A failed system call on a file, with the path and errno text: one line for the user.
public struct FileError: Error, Sendable, CustomStringConvertible {
  public let path: String
  public let operation: String
  public let errno: Int32
  public let detail: String?

  public init(path: String, operation: String, errno: Int32, detail: String? = nil) {
    self.path = path
    self.operation = operation
    self.errno = errno
    self.detail = detail
  }

  public var description: String {
    if let detail { return "\(path): \(detail)" }
    return "\(path): cannot \(operation): \(String(cString: strerror(errno)))"
  }
}

/// File I/O: every syscall on files goes through here, with EINTR retried in one place.
public enum Files {
  /// Calls a syscall wrapper until it does not fail with EINTR.
  @inline(__always)
  public static func retrying<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
      let r = call()
      if r == -1 && errno == EINTR { continue }
      return r
    }
  }

  /// Reads a whole file (regular or /proc) until end of file. Fails rather than read more than
  /// `limit` bytes, so a hostile or huge input cannot exhaust memory.
  public static func read(_ path: String, limit: Int = 1 << 34) throws(FileError) -> [UInt8] {
    let fd = retrying { open(path, O_RDONLY | O_CLOEXEC) }
    guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
    defer { close(fd) }
    var st = stat()
    var capacity = 1 << 20
    if fstat(fd, &st) == 0 && st.st_size > 0 { capacity = Int(st.st_size) + 1 }
    var out = [UInt8]()
    out.reserveCapacity(min(capacity, limit + 1))
    let chunk = 1 << 20
    var buffer = [UInt8](repeating: 0, count: chunk)
    while true {
      let n = buffer.withUnsafeMutableBytes { b in retrying { Glibc.read(fd, b.baseAddress, chunk) } }
      if n < 0 { throw FileError(path: path, operation: "read", errno: errno) }
      if n == 0 { break }
      if out.count + n > limit {
        throw FileError(path: path, operation: "read", errno: EFBIG, detail: "larger than \(limit) bytes")
      }
      out += buffer[0..<n]
    }
    return out
  }

  /// Reads a small text file (e.g. /proc/iomem); nil if it cannot be read.
  public static func readText(_ path: String, limit: Int = 1 << 22) -> String? {
    guard let b = try? read(path, limit: limit) else { return nil }
    return String(decoding: b, as: UTF8.self)
  }

  public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
  public static func isReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }

  /// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
  /// rename over the target, fsync of the directory. Readers see the old file or the new one,
  /// never a mix; a failure leaves the old file untouched and no temporary behind.
  public static func writeAtomically(_ bytes: [UInt8], to path: String) throws(FileError) {
    let dir = directoryName(path)
    let base = path.split(separator: "/").last.map(String.init) ?? path
    let temp = "\(dir)/.\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = retrying { open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
    guard fd >= 0 else { throw FileError(path: path, operation: "create a file beside", errno: errno) }
    var ok = false
    defer {
      if !ok { unlink(temp) }
    }
    var written = 0
    let failure: Int32? = bytes.withUnsafeBytes { raw -> Int32? in
      while written < raw.count {
        let n = retrying { write(fd, raw.baseAddress! + written, raw.count - written) }
        if n < 0 { return errno }
        written += n
      }
      return nil
    }
    if let e = failure {
      close(fd)
      throw FileError(path: path, operation: "write", errno: e)
    }
    if fsync(fd) != 0 {
      let e = errno
      close(fd)
      throw FileError(path: path, operation: "fsync", errno: e)
    }
    close(fd)
    guard rename(temp, path) == 0 else { throw FileError(path: path, operation: "rename onto", errno: errno) }
    ok = true
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
      _ = fsync(dfd)
      close(dfd)
    }
  }

  /// "a/b/c" -> "a/b"; "c" -> "."; "/c" -> "/".
  public static func directoryName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
  }
}
