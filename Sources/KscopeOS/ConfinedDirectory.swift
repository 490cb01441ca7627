import KscopeCore
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// A directory whose files are opened relative to it and never outside it: each component of a
/// relative name is opened with openat(O_NOFOLLOW) from the one before, so neither a symbolic
/// link (to /etc/shadow, to another guest's RAM) nor ".." can lead out. The directory itself is
/// the user's own argument and may be reached through links. Used for snapshot directories,
/// whose contents may come from another host or a guest.
public final class ConfinedDirectory: @unchecked Sendable {
  public let path: String
  public let fd: Int32

  public init(path: String) throws(FileError) {
    self.path = path
    let d = Files.retrying { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    guard d >= 0 else { throw FileError(path: path, operation: "open the directory", errno: errno) }
    fd = d
  }

  deinit { close(fd) }

  /// Splits a relative name into components, refusing absolute names, "..", "." and empty
  /// components (so "a//b" and "a/" are refused too).
  public static func components(_ name: String) -> [String]? {
    guard !name.isEmpty, !name.hasPrefix("/"), name.utf8.count <= 1024 else { return nil }
    let parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    for p in parts where p.isEmpty || p == "." || p == ".." || p.utf8.contains(0) { return nil }
    return parts
  }

  /// Opens `name` (relative, no links anywhere in it) read-only; it must be a regular file.
  /// Returns an open file that closes its descriptor when released.
  public func openFile(_ name: String) throws(FileError) -> OpenFile {
    let shown = path + "/" + name
    guard let parts = ConfinedDirectory.components(name) else {
      throw FileError(
        path: shown, operation: "open", errno: EINVAL,
        detail: "not a plain relative name inside \(path)")
    }
    var dir = fd
    var owned: Int32 = -1
    defer { if owned >= 0 { close(owned) } }
    for (i, part) in parts.enumerated() {
      let last = i == parts.count - 1
      let flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (last ? O_NONBLOCK : O_DIRECTORY)
      let next = Files.retrying { openat(dir, part, flags) }
      guard next >= 0 else {
        let e = errno
        // O_NOFOLLOW on a link gives ELOOP (last component) or ENOTDIR (O_DIRECTORY): say what
        // it is instead.
        var st = stat()
        if e == ELOOP || e == ENOTDIR, fstatat(dir, part, &st, AT_SYMLINK_NOFOLLOW) == 0,
          st.st_mode & S_IFMT == S_IFLNK
        {
          throw FileError(
            path: shown, operation: "open", errno: e,
            detail: "'\(part)' is a symbolic link: refused (files are read inside \(path) only)")
        }
        throw FileError(path: shown, operation: "open", errno: e)
      }
      if owned >= 0 { close(owned) }
      owned = next
      dir = next
    }
    try Files.requireRegular(owned, path: shown)
    let file = OpenFile(fd: owned, path: shown)
    owned = -1
    return file
  }
}

/// An open regular file that owns its descriptor.
public final class OpenFile: @unchecked Sendable {
  public let fd: Int32
  /// The name to show in messages.
  public let path: String

  public init(fd: Int32, path: String) {
    self.fd = fd
    self.path = path
  }

  deinit { close(fd) }

  /// Size in bytes (fstat).
  public var size: UInt64 {
    var st = stat()
    guard fstat(fd, &st) == 0, st.st_size > 0 else { return 0 }
    return UInt64(st.st_size)
  }

  /// The whole file, refused before reading when over `limit` bytes.
  public func readAll(limit: Int) throws(FileError) -> [UInt8] {
    try Files.checkSize(fd, path: path, limit: limit)
    guard lseek(fd, 0, SEEK_SET) == 0 else {
      throw FileError(path: path, operation: "seek", errno: errno)
    }
    return try Files.readAll(fd, path: path, limit: limit)
  }

  /// Up to `count` bytes at `offset` (short only at end of file).
  public func read(at offset: UInt64, count: Int) throws(FileError) -> [UInt8] {
    // Filled by pread, not zeroed first (zeroing was a tenth of a color map's open time).
    let wanted = max(count, 0)
    var failure: Int32 = 0
    let out = [UInt8](unsafeUninitializedCapacity: wanted) { b, initialized in
      var done = 0
      while done < wanted {
        let n = Files.retrying {
          pread(fd, b.baseAddress! + done, wanted - done, off_t(truncatingIfNeeded: offset &+ UInt64(done)))
        }
        if n < 0 {
          failure = errno
          break
        }
        if n == 0 { break }
        done += n
      }
      initialized = done
    }
    if failure != 0 { throw FileError(path: path, operation: "read", errno: failure) }
    return out
  }

  /// Opens a regular file by the user's own path (links followed), without blocking on a FIFO.
  public static func open(_ path: String) throws(FileError) -> OpenFile {
    OpenFile(fd: try Files.openRegular(path), path: path)
  }

  /// The descriptor as swift-system's type (still owned by this object).
  public var descriptor: FileDescriptor { FileDescriptor(rawValue: fd) }

  /// The file mapped read-only.
  public func map() throws(FileError) -> MappedFile { try MappedFile(descriptor: fd, path: path) }
}
