import CKscopeLinux

#if canImport(Glibc)
  import Glibc
#endif

/// What a long-running host service (the clone engine) needs of processes and the file system
/// beyond plain files: lock files, private directories on a shared tmpfs, signals, other
/// processes' ends.
public enum HostProcess {
  /// Sleeps `microseconds` (a signal may end it early).
  public static func sleep(microseconds: UInt64) { usleep(UInt32(min(microseconds, 1_000_000))) }

  /// SIGKILL to `pid` (never to this process or to pid <= 0).
  public static func kill(_ pid: Int32) {
    if pid > 0 && pid != getpid() { _ = Glibc.kill(pid, SIGKILL) }
  }

  /// Pins the calling thread to one CPU (nil: any CPU again). On these machines (themselves
  /// VMs) waking a thread on an idle CPU costs ~45 µs: where a handler runs is part of the design.
  public static func pinCurrentThread(cpu: Int32?) { _ = kscope_pin_cpu(cpu ?? -1) }

  /// SIGKILL this process when its parent ends (PR_SET_PDEATHSIG); fails if the parent has
  /// already gone.
  public static func dieWithParent() throws(OSError) {
    let r = kscope_die_with_parent()
    if r < 0 {
      throw OSError(path: "this process", operation: "bind to its parent's lifetime", errno: -r)
    }
  }

  /// Removes a name, ignoring a missing one.
  public static func unlink(_ path: String) { _ = Glibc.unlink(path) }

  /// SIGTERM and SIGINT set `terminationRequested` (instead of ending the process); SIGPIPE is
  /// ignored (a write to a clone that hung up fails, it does not kill the service).
  public static func catchTermination() {
    signal(SIGTERM) { _ in HostProcess.terminationFlag = 1 }
    signal(SIGINT) { _ in HostProcess.terminationFlag = 1 }
    signal(SIGPIPE, SIG_IGN)
  }
  nonisolated(unsafe) static var terminationFlag: Int32 = 0
  public static var terminationRequested: Bool { terminationFlag != 0 }

  /// Reaps `pid` on a thread of its own when it ends (a detached child we do not wait for).
  public static func reapInBackground(_ pid: Int32) {
    var thread = pthread_t()
    let box = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    box.pointee = pid
    let r = pthread_create(
      &thread, nil,
      { arg in
        let p = arg!.assumingMemoryBound(to: Int32.self)
        let pid = p.pointee
        p.deallocate()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return nil
      }, box)
    if r == 0 { pthread_detach(thread) } else { box.deallocate() }
  }

  /// Creates `path` (mode 0700), or checks that what is there is a directory of this user that
  /// nobody else may write (not a link planted in a shared tmpfs).
  public static func makePrivateDirectory(_ path: String) throws(OSError) {
    if mkdir(path, 0o700) != 0 && errno != EEXIST {
      throw OSError(path: path, operation: "create the directory", errno: errno)
    }
    var st = stat()
    guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid(),
      st.st_mode & 0o022 == 0
    else {
      throw OSError(
        path: path, operation: "use", errno: EPERM, detail: "not a private directory of this user")
    }
  }
}

/// An flock(2) lock on a file (created 0600 if missing), held until `release` or the process
/// ends.
public final class LockFile: @unchecked Sendable {
  public let fd: Int32

  init(descriptor fd: Int32) { self.fd = fd }

  /// The lock, exclusive or shared, if no one holds a conflicting one now; nil otherwise (or if
  /// the file cannot be opened).
  public static func tryLock(_ path: String, exclusive: Bool = true) -> LockFile? {
    (try? acquire(path, exclusive: exclusive, waiting: false)) ?? nil
  }

  /// Waits for the lock (shared or exclusive) on `path` (created 0600 if missing, never through
  /// a symbolic link).
  public static func lock(_ path: String, exclusive: Bool) throws(FileError) -> LockFile {
    guard let lock = try acquire(path, exclusive: exclusive, waiting: true) else {
      throw FileError(path: path, operation: "lock", errno: EWOULDBLOCK)  // waiting never gets here
    }
    return lock
  }

  /// Opens `path` and takes its lock, waiting for it (EINTR retried) or not: nil when not
  /// waiting and someone holds a conflicting lock.
  static func acquire(_ path: String, exclusive: Bool, waiting: Bool) throws(FileError) -> LockFile? {
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
    guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
    let operation = (exclusive ? LOCK_EX : LOCK_SH) | (waiting ? 0 : LOCK_NB)
    while flock(fd, operation) != 0 {
      let e = errno
      if e == EINTR { continue }
      _ = close(fd)
      if e == EWOULDBLOCK, !waiting { return nil }
      throw FileError(path: path, operation: "lock", errno: e)
    }
    return LockFile(descriptor: fd)
  }

  /// Releases the lock (closing the file).
  public func release() { _ = close(fd) }
}
