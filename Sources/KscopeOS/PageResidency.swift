#if canImport(Glibc)
  import Glibc
#endif

/// A read-only MAP_SHARED window on an open file, for asking which of its pages are in the page
/// cache (mincore) and which frames hold them (populate, then /proc/self/pagemap). Mapping a
/// file does no I/O; the window is unmapped on deinit.
public final class PageResidency {
  /// MADV_POPULATE_READ (Linux 5.14; not in Swift's Glibc module).
  static let populateRead: Int32 = 22
  public let base: UnsafeMutableRawPointer
  public let length: Int
  public let pageSize: Int

  /// Maps the first `length` bytes of the file open on `fd`; nil when it cannot be mapped.
  public init?(fd: Int32, length: Int, pageSize: Int) {
    guard length > 0, pageSize > 0,
      let p = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED
    else { return nil }
    base = p
    self.length = length
    self.pageSize = pageSize
  }

  deinit { munmap(base, length) }

  /// Fills `vector` (grown as needed) with one byte per page, bit 0 set for a resident page.
  public func resident(into vector: inout [UInt8]) -> Bool {
    let pages = (length + pageSize - 1) / pageSize
    if vector.count < pages { vector = [UInt8](repeating: 0, count: pages) }
    return vector.withUnsafeMutableBufferPointer { v in mincore(base, length, v.baseAddress) == 0 }
  }

  /// Maps `count` pages from page `first` into this process (MADV_POPULATE_READ: no I/O for
  /// cached pages, EFAULT rather than SIGBUS if the file shrank). False on failure.
  public func populate(first: Int, count: Int) -> Bool {
    madvise(base + first * pageSize, count * pageSize, Self.populateRead) == 0
  }

  /// Drops `count` pages from page `first` from this process's page table again (the page
  /// cache keeps them).
  public func release(first: Int, count: Int) {
    _ = madvise(base + first * pageSize, count * pageSize, MADV_DONTNEED)
  }

  /// The address of page `index` of the window (for /proc/self/pagemap).
  public func address(ofPage index: Int) -> UInt64 {
    UInt64(UInt(bitPattern: base + index * pageSize))
  }
}
