import Glibc

/// Writes files so that a reader sees the old content or the complete new one, never a
/// partial layout: a temporary file in the same directory, fsync, rename, fsync the directory.
public enum AtomicFile {
  public static func write(_ text: String, to path: String) throws(DebugInfoError) {
    try write(Array(text.utf8), to: path)
  }

  public static func write(_ bytes: [UInt8], to path: String) throws(DebugInfoError) {
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    let temporary = "\(path).tmp.\(getpid())"
    func failure(_ what: String) -> DebugInfoError {
      .cannotWrite(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw failure("create \(temporary)") }
    var written = 0
    var error: DebugInfoError? = nil
    bytes.withUnsafeBytes { buffer in
      while written < buffer.count {
        let n = Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
        if n < 0 {
          if errno == EINTR { continue }
          error = failure("write")
          return
        }
        written += n
      }
    }
    if error == nil, fsync(fd) != 0 { error = failure("fsync") }
    if close(fd) != 0, error == nil { error = failure("close") }
    if error == nil, rename(temporary, path) != 0 { error = failure("rename") }
    if let error {
      unlink(temporary)
      throw error
    }
    // The rename is durable once the directory is synced; failing to sync it is not fatal.
    let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dirfd >= 0 {
      fsync(dirfd)
      close(dirfd)
    }
  }

  /// The whole file, or an error naming it.
  public static func read(_ path: String) throws(DebugInfoError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
      if n < 0 {
        if errno == EINTR { continue }
        throw .cannotOpen(path: path, reason: String(cString: strerror(errno)))
      }
      if n == 0 { break }
      result.append(contentsOf: chunk[0..<n])
    }
    return result
  }
}
