// Every libc entry point KscopeVM uses lives in this file: sockets (unix and loopback TCP),
// poll-based timed reads, process signals, and sparse file copies. EINTR is retried here.
import Foundation
import KscopeOS

#if canImport(Glibc)
  import Glibc
#endif

func strerrorText(_ e: Int32) -> UnsafeMutablePointer<CChar> { strerror(e) }

private func closeDescriptor(_ fd: Int32) { _ = Glibc.close(fd) }

// lseek whence values for sparse files (Linux <unistd.h>; Glibc's module does not export them).
private let seekData: Int32 = 3
private let seekHole: Int32 = 4

/// glibc's makedev(3) (a macro in C).
private func deviceNumber(_ major: UInt32, _ minor: UInt32) -> dev_t {
  let ma = UInt64(major)
  let mi = UInt64(minor)
  return dev_t(((ma & 0xfff) << 8) | ((ma & ~0xfff) << 32) | (mi & 0xff) | ((mi & ~0xff) << 12))
}

private func fail(_ op: String, _ detail: String) -> VMError {
  .system(operation: op, detail: detail, errno: errno)
}

/// A connected stream socket (unix or TCP) with deadline-bounded reads and writes.
/// It owns its descriptor: `deinit` closes it.
final class StreamSocket {
  private(set) var fd: Int32

  private init(fd: Int32) { self.fd = fd }
  deinit { if fd >= 0 { closeDescriptor(fd) } }

  func close() {
    if fd >= 0 { closeDescriptor(fd) }
    fd = -1
  }

  /// Connects to a unix-domain socket at `path`.
  static func unix(path: String) throws -> StreamSocket {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
      throw VMError.invalidArgument("socket path too long: \(path)")
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw fail("socket", path) }
    let s = StreamSocket(fd: fd)
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard rc == 0 else { throw fail("connect", path) }
    return s
  }

  /// Connects to 127.0.0.1:`port`. Only loopback: the tool never talks to another address.
  static func loopback(port: UInt16, timeout: Double) throws -> StreamSocket {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw fail("socket", "127.0.0.1:\(port)") }
    let s = StreamSocket(fd: fd)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard rc == 0 else { throw fail("connect", "127.0.0.1:\(port)") }
    return s
  }

  /// Writes all of `data` or throws.
  func write(_ data: Data) throws {
    try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
      var off = 0
      while off < raw.count {
        let n = send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
        if n < 0 {
          if errno == EINTR { continue }
          throw fail("send", "socket")
        }
        off += n
      }
    }
  }

  /// Writes all of `data`, passing `descriptor` along with its first byte (SCM_RIGHTS): how QMP
  /// `getfd` receives a file, so QEMU reads a snapshot's device state from a descriptor kscope
  /// opened instead of running a shell command with its path.
  func write(_ data: Data, passing descriptor: Int32) throws {
    guard !data.isEmpty else { return }
    // struct cmsghdr { size_t len; int level; int type; } + one int, padded: CMSG_SPACE(4) = 24.
    var control = [UInt8](repeating: 0, count: 24)
    let header = MemoryLayout<Int>.size + 8
    withUnsafeBytes(of: Int(header + 4)) { control.replaceSubrange(0..<8, with: $0) }
    withUnsafeBytes(of: Int32(SOL_SOCKET)) { control.replaceSubrange(8..<12, with: $0) }
    withUnsafeBytes(of: Int32(SCM_RIGHTS)) { control.replaceSubrange(12..<16, with: $0) }
    withUnsafeBytes(of: descriptor) { control.replaceSubrange(16..<20, with: $0) }
    let sent: Int = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Int in
      control.withUnsafeMutableBytes { cbuf -> Int in
        var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress!), iov_len: raw.count)
        return withUnsafeMutablePointer(to: &iov) { iovp -> Int in
          var msg = msghdr()
          msg.msg_iov = iovp
          msg.msg_iovlen = 1
          msg.msg_control = cbuf.baseAddress
          msg.msg_controllen = cbuf.count
          while true {
            let n = sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
            if n < 0 && errno == EINTR { continue }
            return n
          }
        }
      }
    }
    guard sent >= 0 else { throw fail("sendmsg", "socket") }
    if sent < data.count { try write(data.suffix(from: data.startIndex + sent)) }
  }

  /// Reads what is available (at most `max` bytes), waiting until `deadline`. Returns an empty
  /// Data at end of stream; throws `.timeout` when the deadline passes first.
  func read(max: Int, deadline: Date) throws -> Data {
    while true {
      let left = deadline.timeIntervalSinceNow
      if left <= 0 { throw VMError.timeout("no data from socket") }
      var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let rc = poll(&p, 1, Int32(min(left * 1000, 60_000)) + 1)
      if rc < 0 {
        if errno == EINTR { continue }
        throw fail("poll", "socket")
      }
      if rc == 0 { continue }
      var buf = [UInt8](repeating: 0, count: max)
      let n = recv(fd, &buf, max, 0)
      if n < 0 {
        if errno == EINTR || errno == EAGAIN { continue }
        throw fail("recv", "socket")
      }
      return Data(buf[0..<n])
    }
  }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). QEMU binds it soon
/// after; a lost race makes QEMU fail to start, which is reported, never silently ignored.
func freeLoopbackPort() throws -> UInt16 {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
  guard fd >= 0 else { throw fail("socket", "free port") }
  defer { close(fd) }
  var addr = sockaddr_in()
  addr.sin_family = sa_family_t(AF_INET)
  addr.sin_port = 0
  addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
  var len = socklen_t(MemoryLayout<sockaddr_in>.size)
  let ok = withUnsafeMutablePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
    }
  }
  guard ok else { throw fail("bind", "127.0.0.1:0") }
  return UInt16(bigEndian: addr.sin_port)
}

/// True if a process with this pid exists and has not exited (signal 0 probes without sending
/// anything). A zombie counts as exited: a daemonized QEMU is reparented to PID 1, which may
/// reap it late.
func processExists(_ pid: Int32) -> Bool {
  guard kill(pid, 0) == 0 || errno == EPERM else { return false }
  // /proc/PID/stat is "pid (comm) S ...": the state follows the last ')'.
  guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
    let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.endIndex
  else { return true }
  return stat[close + 2] != UInt8(ascii: "Z")
}

func sendSignal(_ pid: Int32, _ signal: Int32) { _ = kill(pid, signal) }

let signalTerminate = SIGTERM
let signalKill = SIGKILL

/// Copies `source` to `destination` (created or truncated) keeping holes: only the data extents
/// that SEEK_DATA/SEEK_HOLE report are read, and within them all-zero 64 KiB blocks are skipped
/// too, so a mostly-empty guest RAM file stays mostly empty. Returns the bytes written.
@discardableResult
func sparseCopy(
  from source: String, to destination: String,
  progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
) throws -> UInt64 {
  let src = open(source, O_RDONLY | O_CLOEXEC)
  guard src >= 0 else { throw fail("open", source) }
  defer { close(src) }
  return try sparseCopy(from: src, name: source, to: destination, progress: progress)
}

/// `sparseCopy` from an open descriptor (a snapshot file opened inside its directory).
@discardableResult
func sparseCopy(
  from src: Int32, name source: String, to destination: String,
  progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
) throws -> UInt64 {
  let dst = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
  guard dst >= 0 else { throw fail("open", destination) }
  defer { close(dst) }
  var st = stat()
  guard fstat(src, &st) == 0 else { throw fail("stat", source) }
  let size = off_t(st.st_size)
  guard ftruncate(dst, size) == 0 else { throw fail("ftruncate", destination) }

  let block = 1 << 16
  let buf = UnsafeMutableRawPointer.allocate(byteCount: block, alignment: 4096)
  defer { buf.deallocate() }
  var written: UInt64 = 0
  var pos: off_t = 0
  var reported: off_t = 0
  while pos < size {
    let data = lseek(src, pos, seekData)
    if data < 0 {
      if errno == ENXIO { break }  // no data after pos: the rest is a hole
      throw fail("lseek(SEEK_DATA)", source)
    }
    var hole = lseek(src, data, seekHole)
    if hole < 0 { hole = size }
    var off = data
    while off < hole {
      let want = Int(min(off_t(block), hole - off))
      let n = pread(src, buf, want, off)
      if n < 0 {
        if errno == EINTR { continue }
        throw fail("pread", source)
      }
      if n == 0 { break }
      if !isZero(buf, n) {
        var done = 0
        while done < n {
          let w = pwrite(dst, buf + done, n - done, off + off_t(done))
          if w < 0 {
            if errno == EINTR { continue }
            throw fail("pwrite", destination)
          }
          done += w
        }
        written += UInt64(n)
      }
      off += off_t(n)
      // Every 64 MiB of the file: cheap, and often enough for a progress line.
      if off - reported >= 1 << 26 {
        reported = off
        progress(UInt64(off), UInt64(size))
      }
    }
    pos = hole
  }
  progress(UInt64(size), UInt64(size))
  return written
}

private func isZero(_ p: UnsafeMutableRawPointer, _ n: Int) -> Bool {
  let words = p.bindMemory(to: UInt64.self, capacity: n / 8)
  for i in 0..<(n / 8) where words[i] != 0 { return false }
  let bytes = p.assumingMemoryBound(to: UInt8.self)
  for i in (n / 8 * 8)..<n where bytes[i] != 0 { return false }
  return true
}

/// Creates an empty file of `size` bytes (a hole; tmpfs allocates pages on first touch).
func createSparseFile(_ path: String, size: UInt64) throws {
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
  guard fd >= 0 else { throw fail("open", path) }
  defer { close(fd) }
  guard ftruncate(fd, off_t(size)) == 0 else { throw fail("ftruncate", path) }
}

/// The number of bytes a file actually occupies (allocated blocks), for reporting.
func allocatedBytes(_ path: String) -> UInt64 {
  var st = stat()
  guard stat(path, &st) == 0 else { return 0 }
  return UInt64(st.st_blocks) * 512
}

/// Creates a character device node (for /dev/console in the initramfs staging tree).
func makeCharDevice(_ path: String, major: UInt32, minor: UInt32) throws {
  unlink(path)
  guard mknod(path, S_IFCHR | 0o600, deviceNumber(major, minor)) == 0 else {
    throw fail("mknod", path)
  }
}

/// rename(2): atomic replacement within one file system.
func renameFile(_ from: String, _ to: String) throws {
  guard rename(from, to) == 0 else {
    let e = fail("rename", "\(from) -> \(to)")
    unlink(from)
    throw e
  }
}

/// posix_spawn + waitpid: runs `argv` (argv[0] an absolute path) with stdin from /dev/null and
/// stdout and stderr appended to `logPath`, and returns its exit status (128+signal if killed).
/// Used for QEMU: with -daemonize its first process exits once the VM is set up, and Foundation's
/// Process did not always reap it here (the call hung on a zombie), so we wait ourselves.
func spawnAndWait(_ argv: [String], logPath: String, environment: [String: String] = [:]) throws -> Int32 {
  do {
    return try ChildProcess.run(
      argv,
      .init(
        output: logPath, append: true, errorsToo: true, noInput: true, environment: environment,
        inheritNothing: true)
    ).shellStatus
  } catch {
    throw VMError.system(operation: error.operation, detail: argv[0], errno: error.errno)
  }
}
