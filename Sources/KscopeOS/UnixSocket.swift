import CKscopeLinux

#if canImport(Glibc)
  import Glibc
#endif

/// Unix stream sockets, as the clone hand-off uses them: a listener bound atomically, one
/// message with a descriptor attached (SCM_RIGHTS), the peer's pid from the kernel, and a wait
/// on two descriptors at once.
public struct UnixSocket: Sendable {
  public let fd: Int32
  public init(fd: Int32) { self.fd = fd }

  /// A socket listening on `path` (bound to a temporary name and renamed over `path`, so a
  /// client never connects to a half-made socket).
  public static func listen(_ path: String) throws(OSError) -> UnixSocket {
    let s = kscope_unix_listen(path)
    guard s >= 0 else { throw OSError(path: path, operation: "listen", errno: -s) }
    return UnixSocket(fd: s)
  }

  public static func connect(_ path: String) throws(OSError) -> UnixSocket {
    let s = kscope_unix_connect(path)
    guard s >= 0 else { throw OSError(path: path, operation: "connect", errno: -s) }
    return UnixSocket(fd: s)
  }

  /// The next connection, or nil if accept failed (the listener was shut down, or a client gave
  /// up before it was accepted).
  public func accept() -> UnixSocket? {
    let c = kscope_unix_accept(fd)
    return c >= 0 ? UnixSocket(fd: c) : nil
  }

  public func close() { _ = Glibc.close(fd) }

  /// Ends reads and writes on the socket (a thread blocked in accept or poll on it returns).
  public func shutdown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

  /// Sends `bytes` in one message with `descriptor` attached.
  public func send(_ bytes: [UInt8], descriptor: Int32) throws(OSError) {
    let n = bytes.withUnsafeBytes { kscope_send_fd(fd, $0.baseAddress, $0.count, descriptor) }
    if n < 0 { throw OSError(path: "unix socket", operation: "send a descriptor", errno: -n) }
    if Int(n) != bytes.count {
      throw OSError(path: "unix socket", operation: "send a descriptor", errno: EMSGSIZE)
    }
  }

  /// One message of at most `capacity` bytes and the descriptor it carried (nil if none).
  public func receive(capacity: Int) throws(OSError) -> (bytes: [UInt8], descriptor: Int32?) {
    var buffer = [UInt8](repeating: 0, count: capacity)
    var attached: Int32 = -1
    let n = buffer.withUnsafeMutableBytes {
      kscope_recv_fd(fd, $0.baseAddress, $0.count, &attached)
    }
    if n < 0 { throw OSError(path: "unix socket", operation: "receive a descriptor", errno: -n) }
    return (Array(buffer[0..<Int(n)]), attached >= 0 ? attached : nil)
  }

  /// Writes one byte; false if the peer is gone.
  public func writeByte(_ b: UInt8) -> Bool {
    var v = b
    return Files.retrying { Glibc.write(fd, &v, 1) } == 1
  }

  /// Reads one byte if one arrives within `timeoutMilliseconds`.
  public func readByte(timeoutMilliseconds: Int32) -> UInt8? {
    guard Poll.wait(fd, -1, timeoutMilliseconds: timeoutMilliseconds).contains(.first) else {
      return nil
    }
    var v: UInt8 = 0
    return Files.retrying { Glibc.read(fd, &v, 1) } == 1 ? v : nil
  }

  /// The pid of the peer process, as the kernel recorded it at connect (SO_PEERCRED).
  public var peerPID: Int32? {
    let p = kscope_peer_pid(fd)
    return p > 0 ? p : nil
  }
}

/// poll() on one or two descriptors for input.
public enum Poll {
  public struct Ready: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let first = Ready(rawValue: 1)
    public static let second = Ready(rawValue: 2)
    /// Hung up (or an error, or not open).
    public static let firstHungUp = Ready(rawValue: 4)
    public static let secondHungUp = Ready(rawValue: 8)
    /// poll itself failed.
    public static let failed = Ready(rawValue: 16)
  }

  /// Waits until `first` or `second` (-1: none) has input or hangs up, or the timeout passes
  /// (empty result).
  public static func wait(_ first: Int32, _ second: Int32, timeoutMilliseconds: Int32) -> Ready {
    let r = kscope_poll2(first, second, timeoutMilliseconds)
    return r < 0 ? .failed : Ready(rawValue: r)
  }
}
