import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Sparse files: the one SEEK_DATA/SEEK_HOLE walker, and the sparse copy built on it. Guest RAM
/// files are mostly holes; reading only their data extents keeps a 64 GiB file with 300 MiB
/// of data a 300 MiB job.
public enum SparseFile {
  // SEEK_DATA and SEEK_HOLE (Linux); glibc hides them from Swift and swift-system names them
  // on Darwin and FreeBSD only.
  static let seekData: Int32 = 3
  static let seekHole: Int32 = 4

  /// Calls `body` with each data extent of the file open on `fd`, of `size` bytes, in order.
  /// A file system without SEEK_DATA gives the whole file as one extent.
  public static func forEachDataExtent(
    fd: Int32, size: Int64, path: String, _ body: (Range<Int64>) throws(FileError) -> Void
  ) throws(FileError) {
    var pos: Int64 = 0
    while pos < size {
      let data = Int64(lseek(fd, off_t(pos), seekData))
      if data < 0 {
        if errno == ENXIO { return }  // only a hole after pos
        if errno == EINVAL {  // no SEEK_DATA here: the rest is data
          try body(pos..<size)
          return
        }
        throw FileError(path: path, operation: "lseek(SEEK_DATA)", errno: errno)
      }
      guard data < size else { return }
      var hole = Int64(lseek(fd, off_t(data), seekHole))
      if hole < 0 || hole > size { hole = size }
      if hole <= data { hole = size }
      try body(data..<hole)
      pos = hole
    }
  }

  /// Copies the regular file open on `source` (named `name` in messages) to `destination`
  /// (created or truncated, mode 0600, a symbolic link there refused), keeping holes: only data
  /// extents are read, and all-zero 64 KiB blocks inside them are not written either, so a
  /// mostly-empty guest RAM file stays mostly empty. Returns the bytes written.
  @discardableResult
  public static func copy(
    from source: Int32, name: String, to destination: String,
    progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
  ) throws(FileError) -> UInt64 {
    var st = stat()
    guard fstat(source, &st) == 0 else {
      throw FileError(path: name, operation: "stat", errno: errno)
    }
    let size = Int64(st.st_size)
    let out = try Files.create(destination, mode: 0o600)
    guard ftruncate(out.fd, off_t(size)) == 0 else {
      throw FileError(path: destination, operation: "ftruncate", errno: errno)
    }
    let block = 1 << 16
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: block, alignment: 4096)
    defer { buffer.deallocate() }
    let src = FileDescriptor(rawValue: source)
    let dst = FileDescriptor(rawValue: out.fd)
    var written: UInt64 = 0
    var reported: Int64 = 0
    try forEachDataExtent(fd: source, size: size, path: name) { (extent) throws(FileError) in
      var off = extent.lowerBound
      while off < extent.upperBound {
        let want = Int(min(Int64(block), extent.upperBound - off))
        let n: Int
        do {
          n = try src.read(
            fromAbsoluteOffset: off, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])
          )
        } catch { throw FileError(path: name, operation: "read", errno: Files.errnoValue(error)) }
        if n == 0 { break }
        let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
        if !Memory.isZero(chunk) {
          do { _ = try dst.writeAll(toAbsoluteOffset: off, chunk) } catch {
            throw FileError(path: destination, operation: "write", errno: Files.errnoValue(error))
          }
          written += UInt64(n)
        }
        off += Int64(n)
        // Every 64 MiB of the file: cheap, and often enough for a progress line.
        if off - reported >= 1 << 26 {
          reported = off
          progress(UInt64(off), UInt64(size))
        }
      }
    }
    progress(UInt64(size), UInt64(size))
    return written
  }

  /// `copy` from a path (a regular file; links followed: the path is the user's own).
  @discardableResult
  public static func copy(
    from source: String, to destination: String,
    progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
  ) throws(FileError) -> UInt64 {
    let file = try OpenFile.open(source)
    return try copy(from: file.fd, name: source, to: destination, progress: progress)
  }

  /// Bytes the file at `path` really occupies (allocated blocks); 0 if it cannot be stat'ed.
  public static func allocatedBytes(_ path: String) -> UInt64 {
    var st = stat()
    guard stat(path, &st) == 0, st.st_blocks > 0 else { return 0 }
    return UInt64(st.st_blocks) * 512
  }
}

extension SparseFile {
  /// Creates (or truncates) `path` as a file of `size` bytes that are all a hole (tmpfs
  /// allocates pages on first touch). A symbolic link at `path` is refused.
  public static func createEmpty(_ path: String, size: UInt64) throws(FileError) {
    let file = try Files.create(path, mode: 0o600)
    guard size <= UInt64(Int64.max), ftruncate(file.fd, off_t(size)) == 0 else {
      throw FileError(path: path, operation: "ftruncate", errno: size > UInt64(Int64.max) ? EFBIG : errno)
    }
  }
}
