import Glibc
import KscopeOS

/// Where a clone's pages come from: reads bytes of the parent's RAM file.
public protocol PageSource: Sendable {
  /// Fills `buffer` with the RAM file's bytes at `offset`; short only past the end (zeros there).
  func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(EngineError)
  var description: String { get }
}

/// A snapshot's RAM file on this host.
public final class LocalRAMSource: PageSource, @unchecked Sendable {
  let fd: Int32
  public let path: String
  public let size: UInt64

  public init(path: String) throws(EngineError) {
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else { throw EngineError("cannot open \(path): \(String(cString: strerror(errno)))") }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
      close(fd)
      throw EngineError("\(path) is not a regular file")
    }
    self.path = path
    size = UInt64(st.st_size)
  }
  deinit { close(fd) }

  public var description: String { "local \(path)" }

  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(EngineError) {
    var done = 0
    while done < buffer.count {
      let n = Files.retrying {
        pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
      }
      if n < 0 { throw EngineError("reading \(path) at \(offset): \(String(cString: strerror(errno)))") }
      if n == 0 { break }
      done += n
    }
    if done < buffer.count {
      (buffer.baseAddress! + done).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - done)
    }
  }
}
