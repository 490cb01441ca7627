#if canImport(Glibc)
  import Glibc
#endif

/// A file or device resource mapped read-write and MAP_SHARED (the guest agent's hint region:
/// the ivshmem BAR2 in sysfs, or a plain file). Owns the mapping and its descriptor.
public struct SharedMapping: ~Copyable {
  public let base: UnsafeMutableRawPointer
  public let size: Int
  public let path: String
  /// The file's device and inode (st_dev, st_ino).
  public let device: UInt64
  public let inode: UInt64
  private let fd: Int32

  /// Maps `path` at its current size, which must lie in `allowedSizes`. With `createSize`, a
  /// missing or empty file is created (or grown) to that size first.
  public init(path: String, createSize: Int? = nil, allowedSizes: ClosedRange<Int>)
    throws(FileError)
  {
    let flags = O_RDWR | O_CLOEXEC | (createSize != nil ? O_CREAT : 0)
    let fd = Files.retrying { open(path, flags, 0o644) }
    guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
      let e = errno
      close(fd)
      throw FileError(path: path, operation: "stat", errno: e)
    }
    var size = Int(st.st_size)
    if let want = createSize, size == 0 {
      guard ftruncate(fd, off_t(want)) == 0 else {
        let e = errno
        close(fd)
        throw FileError(path: path, operation: "size to \(want) bytes", errno: e)
      }
      size = want
    }
    guard allowedSizes.contains(size) else {
      close(fd)
      throw FileError(
        path: path, operation: "map", errno: EINVAL,
        detail:
          "\(size) bytes is not a usable region size (\(allowedSizes.lowerBound)...\(allowedSizes.upperBound))"
      )
    }
    guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
      let e = errno
      close(fd)
      throw FileError(path: path, operation: "map \(size) bytes shared", errno: e)
    }
    self.base = p
    self.size = size
    self.fd = fd
    self.path = path
    self.device = UInt64(st.st_dev)
    self.inode = UInt64(st.st_ino)
  }

  deinit {
    munmap(base, size)
    close(fd)
  }
}
