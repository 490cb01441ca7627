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

  public init(path: String) throws(FileError) {
    self.path = path
    let fd = Files.retrying { open(path, O_RDONLY | O_CLOEXEC) }
    guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw FileError(path: path, operation: "stat", errno: errno) }
    guard st.st_mode & S_IFMT == S_IFREG else {
      throw FileError(path: path, operation: "map", errno: EINVAL, detail: "not a regular file")
    }
    size = Int(st.st_size)
    if size == 0 {
      base = nil
      return
    }
    let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
    guard let p, p != MAP_FAILED else { throw FileError(path: path, operation: "mmap", errno: errno) }
    // Random access: the walkers jump around page tables and struct pages.
    _ = madvise(p, size, MADV_RANDOM)
    base = UnsafeRawPointer(p)
  }

  deinit {
    if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
  }

  /// The bytes at `offset..<offset+count`, or nil when they are not all inside the file.
  @inline(__always)
  public func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
    guard let base, offset >= 0, count >= 0, offset <= size, count <= size - offset else { return nil }
    return UnsafeRawBufferPointer(start: base + offset, count: count)
  }
}
