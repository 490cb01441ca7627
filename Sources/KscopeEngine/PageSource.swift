import CKscopeNBD
import Foundation
import KscopeOS

/// Where a clone's pages come from: reads bytes of the parent's RAM file.
public protocol PageSource: Sendable {
  /// Fills `buffer` with the RAM file's bytes at `offset`; short only past the end (zeros there).
  func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(EngineError)
  /// Copies the bytes of each (offset, length) range into `file` at the same offsets (bulk
  /// prefetch); `buffer` is the caller's, for sources that go through one.
  func copy(_ ranges: [FileRange], into file: PositionalFile, buffer: UnsafeMutableRawBufferPointer) throws(EngineError)
  var description: String { get }
}

/// Bytes [offset, offset + length) of the RAM file.
public struct FileRange: Equatable, Sendable {
  public var offset: UInt64
  public var length: UInt64
  public init(offset: UInt64, length: UInt64) {
    self.offset = offset
    self.length = length
  }
}

extension PageSource {
  /// Through `buffer`: a read, then a write, a buffer at a time.
  public func copy(_ ranges: [FileRange], into file: PositionalFile, buffer: UnsafeMutableRawBufferPointer) throws(EngineError) {
    try copyThroughBuffer(ranges, into: file, buffer: buffer)
  }

  func copyThroughBuffer(_ ranges: [FileRange], into file: PositionalFile, buffer: UnsafeMutableRawBufferPointer) throws(EngineError) {
    for r in ranges {
      var done: UInt64 = 0
      while done < r.length {
        let n = Int(min(UInt64(buffer.count), r.length - done))
        let b = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
        try read(into: b, at: r.offset + done)
        do { try file.write(UnsafeRawBufferPointer(b), at: r.offset + done) } catch { throw EngineError(error.description) }
        done += UInt64(n)
      }
    }
  }
}

/// A snapshot's RAM file on this host.
public final class LocalRAMSource: PageSource, @unchecked Sendable {
  let file: PositionalFile
  public let path: String
  public let size: UInt64
  /// What the file was when the engine opened it: a snapshot must not change under clones.
  let identity: PositionalFile.Identity

  public convenience init(path: String) throws(EngineError) {
    let f: PositionalFile
    do { f = try PositionalFile.openReadOnly(path) } catch { throw EngineError(error.description) }
    try self.init(file: f, path: path)
  }

  /// The file open on `descriptor` (a snapshot's RAM opened inside its directory); the caller
  /// keeps its descriptor.
  public convenience init(descriptor: Int32, path: String) throws(EngineError) {
    let f: PositionalFile
    do { f = try PositionalFile.duplicate(descriptor, path: path) } catch { throw EngineError(error.description) }
    try self.init(file: f, path: path)
  }

  init(file: PositionalFile, path: String) throws(EngineError) {
    guard let id = file.identity else { throw EngineError("\(path): cannot stat the file") }
    self.file = file
    self.path = path
    size = UInt64(max(0, id.size))
    identity = id
  }

  /// Fails if the file was written, truncated or replaced since it was opened.
  public func checkUnchanged() throws(EngineError) {
    guard let now = file.identity, now.sameContent(as: identity) else {
      throw EngineError("\(path) changed under the engine (written or truncated since it was opened): refusing to serve pages from it")
    }
  }

  public var description: String { "local \(path)" }

  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(EngineError) {
    try checkUnchanged()
    do { try file.read(into: buffer, at: offset) } catch { throw EngineError(error.description) }
  }
}

/// A snapshot's RAM served over NBD (`kscope serve`, nbdkit): read-only, several requests in
/// flight per read, a pool of connections so concurrent misses do not queue behind each other.
public final class NBDSource: PageSource, @unchecked Sendable {
  public let uri: String
  public let size: UInt64
  let timeoutMilliseconds: Int32
  /// Bytes per NBD request: a read is split into requests of this size, all in flight at once.
  public let requestBytes: Int
  /// Non-blocking polls a read makes before it sleeps (0: sleeps at once).
  let spinPolls: Int32
  /// Requests a bulk copy keeps in flight on each connection.
  public let window: Int
  private let lock = NSLock()
  private var idle: [OpaquePointer] = []

  /// Connects once (to learn the export's size and fail early); `timeout` bounds every read.
  /// `nbd://` (TCP) or `nbd+unix://` (a unix socket on this host).
  public init(
    uri: String, timeoutSeconds: Double = 5, requestBytes: Int = 64 << 10, window: Int = 16, spinPolls: Int = 0
  ) throws(EngineError) {
    self.requestBytes = max(4096, min(requestBytes, 32 << 20))
    self.window = max(1, min(window, 1024))
    self.spinPolls = Int32(max(0, min(spinPolls, 1 << 20)))
    guard uri.hasPrefix("nbd://") || uri.hasPrefix("nbd+unix://"), uri.count < 1024 else {
      throw EngineError("'\(uri.prefix(64))' is not an nbd:// URI")
    }
    self.uri = uri
    timeoutMilliseconds = Int32(timeoutSeconds * 1000)
    let c = try Self.connect(uri, timeoutMilliseconds, spin: self.spinPolls)
    let s = kscope_nbd_size(c)
    guard s > 0 else {
      kscope_nbd_close(c)
      throw EngineError("\(uri): the export has no size")
    }
    size = UInt64(s)
    idle.append(c)
  }

  deinit { for c in idle { kscope_nbd_close(c) } }

  static func connect(_ uri: String, _ timeout: Int32, spin: Int32) throws(EngineError) -> OpaquePointer {
    var error = [CChar](repeating: 0, count: 256)
    guard let c = kscope_nbd_open(uri, timeout, &error, error.count) else {
      throw EngineError("\(uri): \(cText(error))")
    }
    kscope_nbd_set_spin(c, spin)
    return c
  }

  public var description: String { uri }

  /// A connection of the pool (a new one if none is idle).
  private func take() throws(EngineError) -> OpaquePointer {
    lock.lock()
    let pooled = idle.popLast()
    lock.unlock()
    if let pooled { return pooled }
    return try Self.connect(uri, timeoutMilliseconds, spin: spinPolls)
  }

  /// Opens connections until `count` are idle in the pool (ahead of a bulk prefetch, so its
  /// workers do not each pay a TCP connect and an NBD handshake first).
  public func openConnections(_ count: Int) throws(EngineError) {
    lock.lock()
    let missing = max(0, min(count, 64) - idle.count)
    lock.unlock()
    var opened: [OpaquePointer] = []
    for _ in 0..<missing { opened.append(try Self.connect(uri, timeoutMilliseconds, spin: spinPolls)) }
    lock.lock()
    idle += opened
    lock.unlock()
  }

  private func giveBack(_ c: OpaquePointer) {
    lock.lock()
    idle.append(c)
    lock.unlock()
  }

  /// Straight from the connection into `file`: `window` requests always in flight, each written
  /// with one pwrite as it lands (no waiting for a whole stripe, no second copy).
  public func copy(_ ranges: [FileRange], into file: PositionalFile, buffer: UnsafeMutableRawBufferPointer) throws(EngineError) {
    // What lies past the export's end reads as zeros: through the read path.
    let inside = ranges.filter { $0.offset < size && $0.length <= size - $0.offset }
    let outside = ranges.filter { !($0.offset < size && $0.length <= size - $0.offset) }
    if !inside.isEmpty {
      let c = try take()
      var error = [CChar](repeating: 0, count: 256)
      let offsets = inside.map(\.offset)
      let lengths = inside.map(\.length)
      let r = kscope_nbd_copy(
        c, file.fd, offsets, lengths, inside.count, requestBytes, Int32(window), timeoutMilliseconds, &error, error.count)
      if r != 0 {
        kscope_nbd_close(c)
        throw EngineError("\(uri): \(cText(error))")
      }
      giveBack(c)
    }
    try copyThroughBuffer(outside, into: file, buffer: buffer)
  }

  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(EngineError) {
    let c = try take()
    // Past the export's end reads as zeros (as a short file does).
    let inside = offset < size ? Int(min(UInt64(buffer.count), size - offset)) : 0
    if inside < buffer.count {
      (buffer.baseAddress! + inside).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - inside)
    }
    var error = [CChar](repeating: 0, count: 256)
    let r = inside == 0 ? 0 : kscope_nbd_pread(c, buffer.baseAddress, inside, offset, requestBytes, timeoutMilliseconds, &error, error.count)
    if r != 0 {
      kscope_nbd_close(c)  // a connection that failed is not reused
      throw EngineError("\(uri): \(cText(error))")
    }
    giveBack(c)
  }
}

/// The text of a NUL-terminated C buffer.
func cText(_ buffer: [CChar]) -> String {
  String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
