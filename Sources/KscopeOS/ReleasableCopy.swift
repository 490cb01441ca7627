#if canImport(Glibc)
  import Glibc
#endif

/// A private copy of a file's first bytes, in an anonymous mapping whose pages can be given back
/// one range at a time: a reader that decodes from the copy releases what it has consumed, so
/// that the copy shrinks while what it decodes grows (the hint reader's retry after the guest
/// rewrote its region mid-read). A released page is never read again: a read that touches one
/// is an error, not the zeros the kernel would hand back.
public final class ReleasableCopy {
  private let base: UnsafeMutableRawPointer?
  private let mapped: Int
  private let pageSize: Int
  /// The bytes copied (the file's size when taken, or less if it shrank meanwhile).
  public private(set) var count: Int = 0
  /// One flag per page of the mapping: true once released.
  private var released: [Bool]
  private let path: String

  /// Maps `capacity` bytes (not yet resident: pages are taken as `fill` writes them).
  public init(capacity: Int, path: String) throws(FileError) {
    self.path = path
    pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard capacity > 0 else {
      base = nil
      mapped = 0
      released = []
      return
    }
    let p = mmap(nil, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let p, p != MAP_FAILED else { throw FileError(path: path, operation: "mmap", errno: errno) }
    base = p
    mapped = capacity
    released = [Bool](repeating: false, count: (capacity + pageSize - 1) / pageSize)
  }

  deinit {
    if let base { munmap(base, mapped) }
  }

  /// Copies the file's first bytes (at most the capacity) into the mapping with pread, in one
  /// pass: the caller times this between its two generation reads. Returns the bytes copied.
  @discardableResult
  public func fill(from file: OpenFile) throws(FileError) -> Int {
    guard let base else { return 0 }
    released = [Bool](repeating: false, count: released.count)
    var done = 0
    while done < mapped {
      let n = pread(file.fd, base + done, mapped - done, off_t(done))
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else { throw FileError(path: path, operation: "read", errno: errno) }
      if n == 0 { break }
      done += n
    }
    count = done
    return done
  }

  /// The bytes at `offset..<offset+count`, copied out; nil when the range is outside the copy or
  /// touches a released page.
  public func read(at offset: Int, count n: Int) -> [UInt8]? {
    guard let base, offset >= 0, n >= 0, offset <= count, n <= count - offset else {
      return n == 0 && offset >= 0 && offset <= count ? [] : nil
    }
    if n > 0 {
      for page in (offset / pageSize)...((offset + n - 1) / pageSize) where released[page] {
        return nil
      }
    }
    return [UInt8](UnsafeRawBufferPointer(start: base + offset, count: n))
  }

  /// Gives back the whole pages inside `offset..<offset+count` (a page shared with bytes outside
  /// the range stays). Out-of-range or empty ranges release nothing.
  public func release(at offset: Int, count n: Int) {
    guard let base, offset >= 0, n > 0, offset <= mapped, n <= mapped - offset else { return }
    let first = (offset + pageSize - 1) / pageSize
    let end = (offset + n) / pageSize  // exclusive
    guard first < end else { return }
    _ = madvise(base + first * pageSize, (end - first) * pageSize, MADV_DONTNEED)
    for page in first..<end { released[page] = true }
  }

  /// How many pages have been released (for tests).
  public var releasedPages: Int { released.lazy.filter { $0 }.count }
}
