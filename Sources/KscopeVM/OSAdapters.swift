// KscopeVM's calls into the OS layer (KscopeOS), with its errors turned into VMError and its
// byte buffers into Data. No system call is made here.
import Foundation
import KscopeOS

extension VMError {
  /// A KscopeOS failure as the VM layer reports it.
  init(_ e: FileError) {
    if e.errno == ETIMEDOUT, e.detail != nil {
      self = .timeout(e.detail ?? "")
    } else if e.detail != nil {
      self = .invalidArgument(e.description)
    } else {
      self = .system(operation: e.operation, detail: e.path, errno: e.errno)
    }
  }
}

/// A connected stream socket (unix or loopback TCP) speaking Data and Date, for QMP, the guest
/// control channel and the HTTP driver. Owns KscopeOS's socket.
final class SocketConnection {
  private let socket: StreamSocket

  private init(_ socket: StreamSocket) { self.socket = socket }

  func close() { socket.close() }

  static func unix(path: String) throws -> SocketConnection {
    do { return SocketConnection(try StreamSocket.unix(path: path)) } catch { throw VMError(error) }
  }

  static func loopback(port: UInt16, timeout: Double) throws -> SocketConnection {
    do { return SocketConnection(try StreamSocket.loopback(port: port, timeout: timeout)) } catch {
      throw VMError(error)
    }
  }

  /// Writes all of `data` or throws.
  func write(_ data: Data) throws {
    var failure: FileError?
    data.withUnsafeBytes { raw in
      do throws(FileError) { try socket.write(raw) } catch { failure = error }
    }
    if let failure { throw VMError(failure) }
  }

  /// Writes all of `data`, passing `descriptor` with its first byte (SCM_RIGHTS): how QMP
  /// `getfd` receives a file, so QEMU reads a snapshot's device state from a descriptor kscope
  /// opened instead of running a shell command with its path.
  func write(_ data: Data, passing descriptor: Int32) throws {
    var failure: FileError?
    data.withUnsafeBytes { raw in
      do throws(FileError) { try socket.write(raw, passing: descriptor) } catch { failure = error }
    }
    if let failure { throw VMError(failure) }
  }

  /// Reads what is available (at most `max` bytes), waiting until `deadline`. Returns an empty
  /// Data at end of stream; throws `.timeout` when the deadline passes first.
  func read(max: Int, deadline: Date) throws -> Data {
    let left = deadline.timeIntervalSinceNow
    let nanoseconds = left <= 0 ? 0 : UInt64(min(left, 1e6) * 1e9)
    do {
      return Data(try socket.read(max: max, deadline: MonotonicClock.nanoseconds() &+ nanoseconds))
    } catch {
      throw VMError(error)
    }
  }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). QEMU binds it soon
/// after; a lost race makes QEMU fail to start, which is reported, never silently ignored.
func freeLoopbackPort() throws -> UInt16 {
  do { return try StreamSocket.freeLoopbackPort() } catch { throw VMError(error) }
}

/// Copies `source` to `destination` keeping holes (KscopeOS's sparse copy). Returns the bytes
/// written.
@discardableResult
func sparseCopy(
  from source: String, to destination: String,
  progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
) throws -> UInt64 {
  do { return try SparseFile.copy(from: source, to: destination, progress: progress) } catch {
    throw VMError(error)
  }
}

/// `sparseCopy` from an open descriptor (a snapshot file opened inside its directory).
@discardableResult
func sparseCopy(
  from src: Int32, name source: String, to destination: String,
  progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
) throws -> UInt64 {
  do { return try SparseFile.copy(from: src, name: source, to: destination, progress: progress) } catch {
    throw VMError(error)
  }
}

/// Creates an empty file of `size` bytes (a hole; tmpfs allocates pages on first touch).
func createSparseFile(_ path: String, size: UInt64) throws {
  do { try SparseFile.createEmpty(path, size: size) } catch { throw VMError(error) }
}

/// The number of bytes a file actually occupies (allocated blocks), for reporting.
func allocatedBytes(_ path: String) -> UInt64 { SparseFile.allocatedBytes(path) }

/// Creates a character device node (for /dev/console in the initramfs staging tree).
func makeCharDevice(_ path: String, major: UInt32, minor: UInt32) throws {
  do { try Files.makeCharacterDevice(path, major: major, minor: minor) } catch { throw VMError(error) }
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
