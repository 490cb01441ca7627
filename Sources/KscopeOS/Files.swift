import KscopeCore
import SystemPackage

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// KscopeOS is kscope's one operating-system layer, on apple/swift-system (FileDescriptor,
// Errno, Stat): every other target gets its file descriptors, errors, atomic writes, mappings,
// sparse-file walks, zero-block test, clock and child processes from here.

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

  /// From swift-system's error (what FileDescriptor's calls throw).
  public init(path: String, operation: String, _ code: Errno, detail: String? = nil) {
    self.init(path: path, operation: operation, errno: code.rawValue, detail: detail)
  }

  /// The error number as swift-system's `Errno` (`.noSuchFileOrDirectory`, ...).
  public var code: Errno { Errno(rawValue: errno) }

  /// The system's text for the errno alone ("No such file or directory"), or the detail.
  public var message: String {
    if let detail { return TerminalSafe.oneLine(detail) }
    return String(cString: strerror(errno))
  }

  /// What went wrong, without the path (one line).
  public var reason: String {
    if let detail { return TerminalSafe.oneLine(detail) }
    return "cannot \(operation): \(String(cString: strerror(errno)))"
  }

  /// One line: the path's control characters are escaped.
  public var description: String {
    let p = TerminalSafe.oneLine(path)
    if let detail { return "\(p): \(TerminalSafe.oneLine(detail))" }
    return "\(p): cannot \(operation): \(String(cString: strerror(errno)))"
  }
}

/// An operating-system error of any kind (files, mappings, processes): the operation, the path
/// or name it concerned, the errno. `FileError` is its original name.
public typealias OSError = FileError

/// File I/O: every syscall on files goes through here, with EINTR retried in one place.
public enum Files {
  /// The errno of an error thrown by swift-system (EIO for anything else).
  static func errnoValue(_ error: any Error) -> Int32 { (error as? Errno)?.rawValue ?? EIO }

  /// The one EINTR policy: a call interrupted by a signal is repeated (swift-system's
  /// `retryOnInterrupt: true` for its calls, this for raw ones). Blocking waits that must notice
  /// a signal (the agent's signal wait) do not go through here.
  @inline(__always)
  public static func retrying<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
      let r = call()
      if r == -1 && errno == EINTR { continue }
      return r
    }
  }

  /// Reads a whole regular file (a /proc or /sys file counts) until end of file. Fails rather
  /// than read more than `limit` bytes, so a hostile or huge input cannot exhaust memory; a
  /// FIFO, a device or a socket is refused before any read (`/dev/zero` would never end, and
  /// opening a FIFO without O_NONBLOCK waits for a writer forever).
  public static func read(_ path: String, limit: Int = 1 << 34) throws(FileError) -> [UInt8] {
    let fd = try openRegular(path)
    defer { close(fd) }
    return try readAll(fd, path: path, limit: limit)
  }

  /// Like `read`, but a file whose size is over `limit` is refused before anything is read (for
  /// inputs of a known format: maps, layouts, manifests; not /proc or /sys, whose sizes lie).
  public static func readBounded(_ path: String, limit: Int) throws(FileError) -> [UInt8] {
    let fd = try openRegular(path)
    defer { close(fd) }
    try checkSize(fd, path: path, limit: limit)
    return try readAll(fd, path: path, limit: limit)
  }

  /// Opens `path` read-only if it is a regular file (symlinks to one are followed: the path is
  /// the user's own argument). The descriptor is blocking again when returned.
  public static func openRegular(_ path: String) throws(FileError) -> Int32 {
    let fd: FileDescriptor
    do {
      fd = try FileDescriptor.open(
        FilePath(path), .readOnly, options: [.closeOnExec, .nonBlocking], retryOnInterrupt: true)
    } catch {
      throw FileError(path: path, operation: "open", errno: Files.errnoValue(error))
    }
    do throws(FileError) {
      try requireRegular(fd.rawValue, path: path)
    } catch {
      try? fd.close()
      throw error
    }
    return fd.rawValue
  }

  /// Creates (or truncates) `path` for writing, never following a symbolic link at it.
  public static func create(_ path: String, mode: mode_t = 0o600, truncate: Bool = true)
    throws(FileError) -> OpenFile
  {
    var options: FileDescriptor.OpenOptions = [.create, .closeOnExec, .noFollow]
    if truncate { options.insert(.truncate) }
    do {
      let fd = try FileDescriptor.open(
        FilePath(path), .readWrite, options: options, permissions: FilePermissions(rawValue: mode),
        retryOnInterrupt: true)
      return OpenFile(fd: fd.rawValue, path: path)
    } catch {
      throw FileError(path: path, operation: "create", errno: Files.errnoValue(error))
    }
  }

  /// Removes a file (not a directory); a missing file is not an error.
  public static func remove(_ path: String) throws(FileError) {
    if unlink(path) != 0 && errno != ENOENT {
      throw FileError(path: path, operation: "remove", errno: errno)
    }
  }

  /// Throws unless `fd` is a regular file; clears O_NONBLOCK.
  static func requireRegular(_ fd: Int32, path: String) throws(FileError) {
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw FileError(path: path, operation: "stat", errno: errno) }
    guard st.st_mode & S_IFMT == S_IFREG else {
      throw FileError(
        path: path, operation: "read", errno: EINVAL,
        detail: "is \(kindName(st.st_mode)), not a regular file")
    }
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
  }

  /// Refuses a file larger than `limit` bytes, from its size alone.
  public static func checkSize(_ fd: Int32, path: String, limit: Int) throws(FileError) {
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw FileError(path: path, operation: "stat", errno: errno) }
    guard st.st_size >= 0, UInt64(st.st_size) <= UInt64(max(limit, 0)) else {
      throw FileError(
        path: path, operation: "read", errno: EFBIG,
        detail: "\(st.st_size) bytes, more than the \(limit) this input may have")
    }
  }

  /// Reads from `fd` to end of file, at most `limit` bytes.
  public static func readAll(_ fd: Int32, path: String, limit: Int) throws(FileError) -> [UInt8] {
    var st = stat()
    var capacity = 1 << 20
    if fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < Int.max {
      capacity = Int(st.st_size) + 1
    }
    var out = [UInt8]()
    out.reserveCapacity(min(capacity, limit < Int.max ? limit + 1 : limit, 1 << 30))
    let chunk = 1 << 20
    var buffer = [UInt8](repeating: 0, count: chunk)
    let descriptor = FileDescriptor(rawValue: fd)
    while true {
      let n: Int
      do {
        n = try buffer.withUnsafeMutableBytes { b in
          try descriptor.read(into: b, retryOnInterrupt: true)
        }
      } catch {
        throw FileError(path: path, operation: "read", errno: Files.errnoValue(error))
      }
      if n == 0 { break }
      if out.count + n > limit {
        throw FileError(
          path: path, operation: "read", errno: EFBIG, detail: "larger than \(limit) bytes")
      }
      out += buffer[0..<n]
    }
    return out
  }

  /// "a FIFO", "a symbolic link", ... for messages.
  public static func kindName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "a regular file"
    case S_IFDIR: return "a directory"
    case S_IFLNK: return "a symbolic link"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFIFO: return "a FIFO"
    case S_IFSOCK: return "a socket"
    default: return "a special file"
    }
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
  /// never a mix; a failure leaves the old file untouched and no temporary behind. Only a
  /// regular file is ever replaced: a device node, a FIFO, a socket, a directory or a symbolic
  /// link at `path` is an error and stays as it was (rename would replace the link or the
  /// node itself: `-o /dev/null` must not turn /dev/null into a file). Every kscope output
  /// file is written here.
  public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644)
    throws(FileError)
  {
    // withUnsafeBytes rethrows untyped errors: carry ours out by hand.
    var failure: FileError?
    bytes.withUnsafeBytes { raw in
      do throws(FileError) { try writeAtomically(raw, to: path, mode: mode) } catch {
        failure = error
      }
    }
    if let failure { throw failure }
  }

  /// `writeAtomically` of a text's UTF-8.
  public static func writeAtomically(_ text: String, to path: String, mode: mode_t = 0o644)
    throws(FileError)
  {
    try writeAtomically(Array(text.utf8), to: path, mode: mode)
  }

  /// The one atomic write (see the `[UInt8]` form), from any bytes in memory.
  public static func writeAtomically(
    _ raw: UnsafeRawBufferPointer, to path: String, mode: mode_t = 0o644
  ) throws(FileError) {
    guard !path.isEmpty else { throw FileError(path: path, operation: "write", errno: ENOENT) }
    try checkReplaceable(path)
    let dir = directoryName(path)
    let base = path.split(separator: "/").last.map(String.init) ?? path
    let temp = "\(dir)/.\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let descriptor: FileDescriptor
    do {
      descriptor = try FileDescriptor.open(
        FilePath(temp), .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec, .noFollow],
        permissions: FilePermissions(rawValue: mode), retryOnInterrupt: true)
    } catch {
      throw FileError(
        path: path, operation: "create a file beside", errno: Files.errnoValue(error))
    }
    let fd = descriptor.rawValue
    var ok = false
    defer {
      if !ok { unlink(temp) }
    }
    do {
      _ = try descriptor.writeAll(raw)
    } catch {
      try? descriptor.close()
      throw FileError(path: path, operation: "write", errno: Files.errnoValue(error))
    }
    if fsync(fd) != 0 {
      let e = errno
      try? descriptor.close()
      throw FileError(path: path, operation: "fsync", errno: e)
    }
    do { try descriptor.close() } catch {
      throw FileError(path: path, operation: "close", errno: Files.errnoValue(error))
    }
    // Checked again right before the rename: the window is a few system calls, not a read.
    try checkReplaceable(path)
    guard rename(temp, path) == 0 else {
      throw FileError(path: path, operation: "rename onto", errno: errno)
    }
    ok = true
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
      _ = fsync(dfd)
      close(dfd)
    }
  }

  /// Throws unless `path` names nothing or a regular file (lstat: a symbolic link is itself).
  public static func checkReplaceable(_ path: String) throws(FileError) {
    var st = stat()
    if lstat(path, &st) != 0 {
      if errno == ENOENT { return }
      throw FileError(path: path, operation: "stat", errno: errno)
    }
    guard st.st_mode & S_IFMT == S_IFREG else {
      throw FileError(
        path: path, operation: "replace", errno: EEXIST,
        detail: "is \(kindName(st.st_mode)), not a regular file: refusing to replace it")
    }
  }

  /// "a/b/c" -> "a/b"; "c" -> "."; "/c" -> "/".
  public static func directoryName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
  }
}
