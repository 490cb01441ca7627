#if canImport(Glibc)
  import Glibc
#endif

/// A regular file read and written at offsets (pread/pwrite), as the clone engine uses its host
/// cache file and a snapshot's RAM: full reads and writes, EINTR retried, what the file is
/// (device, inode, size, mtime) to notice it changing, and whether a page of it holds data.
public final class PositionalFile: @unchecked Sendable {
  public let fd: Int32
  public let path: String

  private init(fd: Int32, path: String) {
    self.fd = fd
    self.path = path
  }

  deinit { _ = close(fd) }

  /// Creates `path` anew (whatever was there is removed first), `size` bytes of holes, mode 0600.
  public static func createSparse(_ path: String, size: UInt64) throws(OSError) -> PositionalFile {
    guard size <= UInt64(Int64.max) else {
      throw OSError(path: path, operation: "set the size", errno: EFBIG)
    }
    unlink(path)
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
    guard fd >= 0 else { throw OSError(path: path, operation: "create", errno: errno) }
    guard ftruncate(fd, off_t(size)) == 0 else {
      let e = errno
      _ = close(fd)
      unlink(path)
      throw OSError(path: path, operation: "set the size", errno: e)
    }
    return PositionalFile(fd: fd, path: path)
  }

  /// Opens a regular file read-only (no link followed).
  public static func openReadOnly(_ path: String) throws(OSError) -> PositionalFile {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else { throw OSError(path: path, operation: "open", errno: errno) }
    let f = PositionalFile(fd: fd, path: path)
    guard f.identity?.isRegular == true else {
      throw OSError(path: path, operation: "use", errno: EINVAL, detail: "not a regular file")
    }
    return f
  }

  /// Its own descriptor for the regular file open on `descriptor` (the caller keeps that one).
  public static func duplicate(_ descriptor: Int32, path: String) throws(OSError) -> PositionalFile
  {
    let fd = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
    guard fd >= 0 else { throw OSError(path: path, operation: "use", errno: errno) }
    let f = PositionalFile(fd: fd, path: path)
    guard f.identity?.isRegular == true else {
      throw OSError(path: path, operation: "use", errno: EINVAL, detail: "not a regular file")
    }
    return f
  }

  /// What the file is now; nil if fstat fails.
  public struct Identity: Equatable, Sendable {
    public var device: UInt64, inode: UInt64, size: Int64, mtime: Int, mtimeNanoseconds: Int
    public var isRegular: Bool
    public var allocatedBytes: UInt64
    /// Equal as a file: same inode, size and modification time (allocation may differ).
    public func sameContent(as o: Identity) -> Bool {
      device == o.device && inode == o.inode && size == o.size && mtime == o.mtime
        && mtimeNanoseconds == o.mtimeNanoseconds
    }
  }

  public var identity: Identity? {
    var st = stat()
    guard fstat(fd, &st) == 0 else { return nil }
    return Identity(
      device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
      mtime: st.st_mtim.tv_sec,
      mtimeNanoseconds: st.st_mtim.tv_nsec, isRegular: st.st_mode & S_IFMT == S_IFREG,
      allocatedBytes: UInt64(max(0, st.st_blocks)) * 512)
  }

  /// Fills `buffer` from `offset`; past the end of the file it reads zeros. Returns the bytes
  /// the file had.
  @discardableResult
  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(OSError)
    -> Int
  {
    var done = 0
    while done < buffer.count {
      let n = Files.retrying {
        pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
      }
      if n < 0 { throw OSError(path: path, operation: "read at \(offset)", errno: errno) }
      if n == 0 { break }
      done += n
    }
    if done < buffer.count {
      (buffer.baseAddress! + done).initializeMemory(
        as: UInt8.self, repeating: 0, count: buffer.count - done)
    }
    return done
  }

  /// Writes all of `bytes` at `offset`.
  public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(OSError) {
    var done = 0
    while done < bytes.count {
      let w = Files.retrying {
        pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
      }
      if w <= 0 {
        throw OSError(path: path, operation: "write at \(offset)", errno: w < 0 ? errno : EIO)
      }
      done += w
    }
  }

  /// True if the byte at `offset` is data, not a hole (SEEK_DATA; on tmpfs: the page is in the
  /// file's page cache or swapped out, so a private mapping's fault gets it from the file).
  public func hasData(at offset: UInt64) -> Bool {
    lseek(fd, off_t(offset), SparseFile.seekData) == off_t(offset)
  }
}
