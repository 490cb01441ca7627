import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A listening unix socket for tests that play QEMU's side of a protocol.
final class FakeUnixServer: @unchecked Sendable {
  let fd: Int32
  let path: String

  init(path: String) throws {
    self.path = path
    unlink(path)
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      let b = Array(path.utf8)
      raw.copyBytes(from: b)
      raw[b.count] = 0
    }
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard rc == 0, listen(fd, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
  }

  func accept() -> Connection? {
    let c = Glibc.accept(fd, nil, nil)
    return c >= 0 ? Connection(fd: c) : nil
  }

  func close() {
    _ = Glibc.close(fd)
    unlink(path)
  }

  final class Connection {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    func send(_ s: String) {
      _ = s.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }
    /// Reads bytes up to a newline (tests only: tiny messages).
    func receiveLine() -> String {
      var out = [UInt8]()
      var b: UInt8 = 0
      while recv(fd, &b, 1, 0) == 1 {
        if b == 0x0a { break }
        out.append(b)
      }
      return String(decoding: out, as: UTF8.self)
    }
    func close() { _ = Glibc.close(fd) }
  }
}
