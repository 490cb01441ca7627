import Glibc

public enum Descriptors {
  /// Marks every open descriptor above 2 close-on-exec, so a long-lived process started next
  /// (QEMU, the clone engine) inherits none of ours: a caller's pipe held open by it would keep
  /// that caller's reader waiting for an end that never comes. (glibc's
  /// posix_spawn_file_actions_addclosefrom_np would do this in the child, but Swift's Glibc
  /// module does not export it.)
  public static func closeOnExecAbove(_ fd: Int32) {
    guard let dir = opendir("/proc/self/fd") else { return }
    defer { closedir(dir) }
    let own = dirfd(dir)
    var n = 0
    while let e = readdir(dir), n < 1 << 20 {
      n += 1
      let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      guard let d = Int32(name), d > fd, d != own else { continue }
      let flags = fcntl(d, F_GETFD)
      if flags >= 0 { _ = fcntl(d, F_SETFD, flags | FD_CLOEXEC) }
    }
  }
}
