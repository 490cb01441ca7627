#if canImport(Glibc)
  import Glibc
#endif

// The few calls the CLI's long-running commands (`clone engine`, `serve`, `vm clone --lazy`)
// need beyond files: a canonical path, a TCP probe, signal forwarding.

extension Files {
  /// The absolute, symlink-free form of an existing path (realpath(3)).
  public static func canonicalPath(_ path: String) throws(FileError) -> String {
    guard let p = realpath(path, nil) else {
      throw FileError(path: path, operation: "resolve", errno: errno)
    }
    defer { free(p) }
    return String(cString: p)
  }
}

extension StreamSocket {
  /// Whether a TCP connection to `host`:`port` succeeds now (a probe that the server listens).
  public static func tcpConnects(host: String, port: Int) -> Bool {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var res: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else { return false }
    defer { freeaddrinfo(res) }
    let s = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard s >= 0 else { return false }
    defer { _ = Glibc.close(s) }
    return connect(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0
  }
}

extension HostProcess {
  /// On SIGINT, SIGTERM or SIGHUP: SIGTERM to `child`, then this process exits 0 (a supervisor
  /// whose child must not outlive it, however it is stopped).
  public static func forwardTermination(to child: Int32) {
    forwardedChild = child
    for s in [SIGINT, SIGTERM, SIGHUP] {
      signal(s) { _ in
        if HostProcess.forwardedChild > 0 { _ = Glibc.kill(HostProcess.forwardedChild, SIGTERM) }
        _exit(0)
      }
    }
  }
  nonisolated(unsafe) static var forwardedChild: Int32 = 0
}
