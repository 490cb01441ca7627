#if canImport(Glibc)
  import Glibc
#endif

/// A whole file mapped read-only (MAP_SHARED, so a live guest's RAM file can be read while it
/// is paused without copying it). Owns the mapping: unmapped on deinit.
public final class MappedFile: @unchecked Sendable {
  public let path: String
  public let size: Int
  /// Start of the mapping; nil for an empty file.
  public let base: UnsafeRawPointer?

  /// A duplicate of the descriptor the file was mapped from (for SEEK_DATA), owned.
  private let fd: Int32

  public convenience init(path: String) throws(FileError) {
    let fd = try Files.openRegular(path)
    defer { close(fd) }
    try self.init(descriptor: fd, path: path)
  }

  /// Maps the regular file open on `descriptor` (the caller keeps its descriptor).
  public init(descriptor: Int32, path: String) throws(FileError) {
    self.path = path
    var st = stat()
    guard fstat(descriptor, &st) == 0 else {
      throw FileError(path: path, operation: "stat", errno: errno)
    }
    guard st.st_mode & S_IFMT == S_IFREG else {
      throw FileError(
        path: path, operation: "map", errno: EINVAL,
        detail: "is \(Files.kindName(st.st_mode)), not a regular file")
    }
    let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
    guard copy >= 0 else { throw FileError(path: path, operation: "dup", errno: errno) }
    fd = copy
    let length = Int(st.st_size)
    if length == 0 {
      size = 0
      base = nil
      return
    }
    let p = mmap(nil, length, PROT_READ, MAP_SHARED, descriptor, 0)
    guard let p, p != MAP_FAILED else {
      let e = errno
      // Some file systems cannot map a regular file (sysfs binary attributes such as
      // /sys/kernel/btf/vmlinux: EPERM or ENODEV): read it into private memory instead.
      guard e == EPERM || e == ENODEV || e == EACCES || e == EINVAL else {
        close(copy)
        throw FileError(path: path, operation: "mmap", errno: e)
      }
      do {
        (base, size) = try Self.readCopy(descriptor, path: path, length: length)
      } catch {
        close(copy)
        throw error
      }
      return
    }
    size = length
    // Random access: the walkers jump around page tables and struct pages.
    _ = madvise(p, size, MADV_RANDOM)
    base = UnsafeRawPointer(p)
  }

  /// The file's bytes, read into an anonymous private mapping (unmapped on deinit like a file
  /// mapping); at most `length` bytes, fewer if the file ends earlier.
  private static func readCopy(_ fd: Int32, path: String, length: Int) throws(FileError)
    -> (UnsafeRawPointer?, Int)
  {
    let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let p, p != MAP_FAILED else { throw FileError(path: path, operation: "mmap", errno: errno) }
    var done = 0
    while done < length {
      let n = pread(fd, p + done, length - done, off_t(done))
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else {
        let e = errno
        munmap(p, length)
        throw FileError(path: path, operation: "read", errno: e)
      }
      if n == 0 { break }
      done += n
    }
    guard done > 0 else {
      munmap(p, length)
      return (nil, 0)
    }
    // Unmap the tail a short file left unused, so that size and mapping agree for deinit.
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let kept = (done + page - 1) / page * page
    if kept < length { munmap(p + kept, length - kept) }
    return (UnsafeRawPointer(p), done)
  }

  deinit {
    if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    close(fd)
  }

  /// The bytes at `offset..<offset+count`, or nil when they are not all inside the file.
  @inline(__always)
  public func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
    guard let base, offset >= 0, count >= 0, offset <= size, count <= size - offset else {
      return nil
    }
    return UnsafeRawBufferPointer(start: base + offset, count: count)
  }

  /// Reads up to `count` bytes at `offset` into `buffer` with pread, not through the mapping:
  /// a one-pass scan of a large file (the RAM content digest) then costs no page faults and
  /// leaves no page tables to tear down. Returns the bytes read (short only at end of file),
  /// or nil on error (errno as `Files.lastErrno`).
  public func read(into buffer: inout [UInt8], count: Int, at offset: Int) -> Int? {
    guard offset >= 0 else { return nil }
    return Files.read(fd, into: &buffer, count: count, at: UInt64(offset))
  }
}

extension MappedFile {
  /// The file's data extents (SEEK_DATA/SEEK_HOLE), in order: what a search need read, since a
  /// hole reads as zeros (and reading one through the mapping would fill it with pages).
  public func dataExtents() throws(FileError) -> [Range<Int>] {
    var out: [Range<Int>] = []
    try SparseFile.forEachDataExtent(fd: fd, size: Int64(size), path: path) { (extent) throws(FileError) in
      out.append(Int(extent.lowerBound)..<Int(extent.upperBound))
    }
    return out
  }

  /// Calls `body` with the offset and bytes of every block of `blockSize` bytes that holds a
  /// non-zero byte, in file order. Holes (SEEK_DATA/SEEK_HOLE) are skipped without reading
  /// them, so the cost follows the data a (sparse) RAM file really holds, and the result does
  /// not depend on which zero blocks are holes: a live RAM file and its sparse copy agree.
  public func forEachNonZeroBlock(
    blockSize: Int = 1 << 16, _ body: (Int, UnsafeRawBufferPointer) -> Void
  ) throws(FileError) {
    var nextBlock = 0
    guard let base, size > 0 else { return }
    try SparseFile.forEachDataExtent(fd: fd, size: Int64(size), path: path) {
      (extent) throws(FileError) in
      // Blocks are aligned to the file, so where extents start does not change the blocks; a
      // block that straddles two extents is tested once.
      var off = Int(extent.lowerBound) / blockSize * blockSize
      if off < nextBlock { off = nextBlock }
      while off < Int(extent.upperBound) {
        let block = UnsafeRawBufferPointer(start: base + off, count: min(blockSize, size - off))
        if !Memory.isZero(block) { body(off, block) }
        off += blockSize
      }
      nextBlock = off
    }
  }
}
