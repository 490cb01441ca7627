#if canImport(Glibc)
  import Glibc
#endif

/// A connected stream socket (unix or loopback TCP) with deadline-bounded reads, for QMP, the
/// guest control channel and the workload drivers. Owns its descriptor: `deinit` closes it.
public final class StreamSocket {
  public private(set) var fd: Int32
  /// What it is connected to, for messages.
  public let peer: String

  private init(fd: Int32, peer: String) {
    self.fd = fd
    self.peer = peer
  }
  deinit { if fd >= 0 { Glibc.close(fd) } }

  public func close() {
    if fd >= 0 { Glibc.close(fd) }
    fd = -1
  }

  /// Connects to a unix-domain socket at `path`.
  public static func unix(path: String) throws(FileError) -> StreamSocket {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
      throw FileError(path: path, operation: "connect", errno: ENAMETOOLONG, detail: "socket path too long")
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw FileError(path: path, operation: "socket", errno: errno) }
    let s = StreamSocket(fd: fd, peer: path)
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
        Files.retrying { connect(fd, sa, socklen_t(MemoryLayout<sockaddr_un>.size)) }
      }
    }
    guard rc == 0 else { throw FileError(path: path, operation: "connect", errno: errno) }
    return s
  }

  /// Connects to 127.0.0.1:`port`, sends timing out after `timeout` seconds. Only loopback:
  /// kscope never talks to another address.
  public static func loopback(port: UInt16, timeout: Double) throws(FileError) -> StreamSocket {
    let name = "127.0.0.1:\(port)"
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw FileError(path: name, operation: "socket", errno: errno) }
    let s = StreamSocket(fd: fd, peer: name)
    var addr = loopbackAddress(port: port)
    let t = max(0, timeout)
    var tv = timeval(tv_sec: Int(t), tv_usec: Int((t - Double(Int(t))) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard rc == 0 else { throw FileError(path: name, operation: "connect", errno: errno) }
    return s
  }

  static func loopbackAddress(port: UInt16) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return addr
  }

  /// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). Whoever binds it
  /// next may lose a race; that failure is theirs to report.
  public static func freeLoopbackPort() throws(FileError) -> UInt16 {
    let name = "127.0.0.1:0"
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw FileError(path: name, operation: "socket", errno: errno) }
    defer { Glibc.close(fd) }
    var addr = loopbackAddress(port: 0)
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
      }
    }
    guard ok else { throw FileError(path: name, operation: "bind", errno: errno) }
    return UInt16(bigEndian: addr.sin_port)
  }

  /// Writes all of `bytes` or throws.
  public func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
    var off = 0
    while off < bytes.count {
      let n = send(fd, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
      if n < 0 {
        if errno == EINTR { continue }
        throw FileError(path: peer, operation: "send", errno: errno)
      }
      off += n
    }
  }

  /// Writes all of `bytes`, passing `descriptor` along with the first byte (SCM_RIGHTS): how
  /// QMP `getfd` receives a file.
  public func write(_ bytes: UnsafeRawBufferPointer, passing descriptor: Int32) throws(FileError) {
    guard bytes.count > 0, let base = bytes.baseAddress else { return }
    // struct cmsghdr { size_t len; int level; int type; } + one int, padded: CMSG_SPACE(4) = 24.
    var control = [UInt8](repeating: 0, count: 24)
    let header = MemoryLayout<Int>.size + 8
    withUnsafeBytes(of: Int(header + 4)) { control.replaceSubrange(0..<8, with: $0) }
    withUnsafeBytes(of: Int32(SOL_SOCKET)) { control.replaceSubrange(8..<12, with: $0) }
    withUnsafeBytes(of: Int32(SCM_RIGHTS)) { control.replaceSubrange(12..<16, with: $0) }
    withUnsafeBytes(of: descriptor) { control.replaceSubrange(16..<20, with: $0) }
    let sent: Int = control.withUnsafeMutableBytes { cbuf -> Int in
      var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: base), iov_len: bytes.count)
      return withUnsafeMutablePointer(to: &iov) { iovp -> Int in
        var msg = msghdr()
        msg.msg_iov = iovp
        msg.msg_iovlen = 1
        msg.msg_control = cbuf.baseAddress
        msg.msg_controllen = cbuf.count
        return Files.retrying { sendmsg(fd, &msg, Int32(MSG_NOSIGNAL)) }
      }
    }
    guard sent >= 0 else { throw FileError(path: peer, operation: "sendmsg", errno: errno) }
    if sent < bytes.count { try write(UnsafeRawBufferPointer(rebasing: bytes[sent...])) }
  }

  /// Reads what is available (at most `max` bytes), waiting until `deadline` (MonotonicClock
  /// nanoseconds). Empty at end of stream; throws ETIMEDOUT when the deadline passes first.
  public func read(max: Int, deadline: UInt64) throws(FileError) -> [UInt8] {
    while true {
      let now = MonotonicClock.nanoseconds()
      guard now < deadline else {
        throw FileError(path: peer, operation: "read", errno: ETIMEDOUT, detail: "no data from socket")
      }
      let leftMs = min((deadline - now) / 1_000_000, 60_000) + 1
      var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let rc = poll(&p, 1, Int32(leftMs))
      if rc < 0 {
        if errno == EINTR { continue }
        throw FileError(path: peer, operation: "poll", errno: errno)
      }
      if rc == 0 { continue }
      var buf = [UInt8](repeating: 0, count: max)
      let n = recv(fd, &buf, max, 0)
      if n < 0 {
        if errno == EINTR || errno == EAGAIN { continue }
        throw FileError(path: peer, operation: "recv", errno: errno)
      }
      buf.removeLast(max - n)
      return buf
    }
  }
}
