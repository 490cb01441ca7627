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
    size = Int(st.st_size)
    if size == 0 {
      base = nil
      return
    }
    let p = mmap(nil, size, PROT_READ, MAP_SHARED, descriptor, 0)
    guard let p, p != MAP_FAILED else {
      let e = errno
      close(copy)
      throw FileError(path: path, operation: "mmap", errno: e)
    }
    // Random access: the walkers jump around page tables and struct pages.
    _ = madvise(p, size, MADV_RANDOM)
    base = UnsafeRawPointer(p)
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
