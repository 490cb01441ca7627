import CKscopeNBD
import Foundation
import KscopeOS

/// Where a clone's pages come from: reads bytes of the parent's RAM file.
public protocol PageSource: Sendable {
  /// Fills `buffer` with the RAM file's bytes at `offset`; short only past the end (zeros there).
  func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(EngineError)
  var description: String { get }
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
  private let lock = NSLock()
  private var idle: [OpaquePointer] = []

  /// Connects once (to learn the export's size and fail early); `timeout` bounds every read.
  public init(uri: String, timeoutSeconds: Double = 5, requestBytes: Int = 64 << 10) throws(EngineError) {
    self.requestBytes = max(4096, min(requestBytes, 32 << 20))
    guard uri.hasPrefix("nbd://"), uri.count < 1024 else {
      throw EngineError("'\(uri.prefix(64))' is not an nbd:// URI")
    }
    self.uri = uri
    timeoutMilliseconds = Int32(timeoutSeconds * 1000)
    let c = try Self.connect(uri, timeoutMilliseconds)
    let s = kscope_nbd_size(c)
    guard s > 0 else {
      kscope_nbd_close(c)
      throw EngineError("\(uri): the export has no size")
    }
    size = UInt64(s)
    idle.append(c)
  }

  deinit { for c in idle { kscope_nbd_close(c) } }

  static func connect(_ uri: String, _ timeout: Int32) throws(EngineError) -> OpaquePointer {
    var error = [CChar](repeating: 0, count: 256)
    guard let c = kscope_nbd_open(uri, timeout, &error, error.count) else {
      throw EngineError("\(uri): \(cText(error))")
    }
    return c
  }

  public var description: String { uri }

  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(EngineError) {
    lock.lock()
    let pooled = idle.popLast()
    lock.unlock()
    let c: OpaquePointer
    if let pooled { c = pooled } else { c = try Self.connect(uri, timeoutMilliseconds) }
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
    lock.lock()
    idle.append(c)
    lock.unlock()
  }
}

/// The text of a NUL-terminated C buffer.
func cText(_ buffer: [CChar]) -> String {
  String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
