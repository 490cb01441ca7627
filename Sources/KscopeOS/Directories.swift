#if canImport(Glibc)
  import Glibc
#endif

/// What kind of file a path or descriptor is.
public enum FileKind: Sendable, Equatable {
  case regular, directory, symbolicLink, other
}

/// The parts of stat(2) that callers compare: kind, identity (device, inode), size.
public struct FileStatus: Sendable {
  public var kind: FileKind
  public var device: UInt64
  public var inode: UInt64
  public var size: Int64
  /// "a regular file", "a FIFO", ... for messages.
  public var kindName: String

  init(_ st: stat) {
    switch st.st_mode & S_IFMT {
    case S_IFREG: kind = .regular
    case S_IFDIR: kind = .directory
    case S_IFLNK: kind = .symbolicLink
    default: kind = .other
    }
    device = UInt64(st.st_dev)
    inode = UInt64(st.st_ino)
    size = Int64(st.st_size)
    kindName = Files.kindName(st.st_mode)
  }
}

/// One directory entry: its name, and its kind when the file system says (nil: ask stat).
public struct DirectoryEntry: Sendable {
  public var name: String
  public var kind: FileKind?
}

// Directories and file status: listings, stat without following links, mkdir, rename.
extension Files {
  /// The status of `path`, a symbolic link itself rather than its target (lstat); nil (errno
  /// set) when it cannot be had.
  public static func status(_ path: String) -> FileStatus? {
    var st = stat()
    return lstat(path, &st) == 0 ? FileStatus(st) : nil
  }

  /// The status of the file open on `fd` (fstat); nil on failure.
  public static func status(fd: Int32) -> FileStatus? {
    var st = stat()
    return fstat(fd, &st) == 0 ? FileStatus(st) : nil
  }

  /// The entries of a directory, without "." and "..", at most `limit` of them. Empty when it
  /// cannot be read.
  public static func listDirectory(_ path: String, limit: Int = 1 << 20) -> [DirectoryEntry] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var out: [DirectoryEntry] = []
    while out.count < limit, let e = readdir(dir) {
      let name = withUnsafeBytes(of: e.pointee.d_name) {
        String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name == "." || name == ".." { continue }
      let kind: FileKind?
      switch Int32(e.pointee.d_type) {
      case Int32(DT_REG): kind = .regular
      case Int32(DT_DIR): kind = .directory
      case Int32(DT_LNK): kind = .symbolicLink
      case Int32(DT_UNKNOWN): kind = nil
      default: kind = .other
      }
      out.append(DirectoryEntry(name: name, kind: kind))
    }
    return out
  }

  /// Creates one directory (its parent must exist).
  public static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(FileError) {
    guard mkdir(path, mode) == 0 else {
      throw FileError(path: path, operation: "mkdir", errno: errno)
    }
  }

  /// rename(2): atomic replacement within one file system.
  public static func renameFile(_ from: String, to: String) throws(FileError) {
    guard Glibc.rename(from, to) == 0 else {
      throw FileError(path: "\(from) -> \(to)", operation: "rename", errno: errno)
    }
  }

  /// Creates a character device node (the initramfs's /dev/console), replacing a file there.
  public static func makeCharacterDevice(_ path: String, major: UInt32, minor: UInt32)
    throws(FileError)
  {
    unlink(path)
    // glibc's makedev(3), a macro in C.
    let ma = UInt64(major)
    let mi = UInt64(minor)
    let dev = dev_t(((ma & 0xfff) << 8) | ((ma & ~0xfff) << 32) | (mi & 0xff) | ((mi & ~0xff) << 12))
    guard mknod(path, S_IFCHR | 0o600, dev) == 0 else {
      throw FileError(path: path, operation: "mknod", errno: errno)
    }
  }

  /// Opens a new file for writing: it must not exist yet (O_EXCL), no link is followed.
  public static func createNew(_ path: String, mode: mode_t = 0o600) throws(FileError) -> OpenFile {
    let fd = retrying { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode) }
    guard fd >= 0 else { throw FileError(path: path, operation: "create", errno: errno) }
    return OpenFile(fd: fd, path: path)
  }

  /// Moves the file offset of `fd` back to the start.
  public static func seekToStart(_ fd: Int32, path: String) throws(FileError) {
    guard lseek(fd, 0, SEEK_SET) == 0 else {
      throw FileError(path: path, operation: "lseek", errno: errno)
    }
  }
}
