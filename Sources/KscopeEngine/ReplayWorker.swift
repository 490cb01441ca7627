import CKscopeLinux
import KscopeClone
import KscopeOS

/// What one replay clone reports to the replay driver (as JSON on its stdout).
public struct WorkerReport: Codable, Sendable {
  public var pid: UInt32
  public var accesses: UInt64
  public var verifiedPages: UInt64
  public var mismatches: UInt64
  public var firstMismatch: UInt64?
  /// First touches: frame and ns until the access returned (a fault's full round trip).
  public var firstTouchFrames: [UInt64]
  public var firstTouchNanoseconds: [UInt64]
  /// For each first touch, ns from the clone's first access until it returned.
  public var firstTouchDoneNanoseconds: [UInt64]
  /// Frames mapped in this clone's page table at the end (pagemap): what it touched.
  public var mappedFrames: [UInt64]
  /// Of its mapped pages, the private ones (copy-on-write copies and zero-filled holes).
  public var privatePages: UInt64
}

/// A clone's guest RAM on the engine: the host cache file mapped privately, registered with
/// userfaultfd (all but large holes), and the uffd handed to the engine (kscope_handoff.h).
/// Nothing may be touched before `init` returns: the engine has acknowledged by then.
public final class EngineClient: @unchecked Sendable {
  public let mapping: PrivateMapping
  public let layout: RAMLayout
  let socket: UnixSocket
  private var connected = true

  public init(cachePath: String, layout: RAMLayout, holes: [FrameRange], socketPath: String) throws(EngineError) {
    self.layout = layout
    let page = layout.pageSize
    do { mapping = try PrivateMapping(path: cachePath, size: Int(layout.fileSize)) } catch {
      throw EngineError(error.description)
    }
    let start = mapping.address
    let uffd: Userfaultfd
    do { uffd = try Userfaultfd.open() } catch { throw EngineError(error.description) }
    // The engine holds the only reference once it has acknowledged: if it goes away, the faults
    // it leaves are released rather than left waiting on a descriptor nobody reads.
    defer { uffd.close() }
    do {
      try uffd.registerMissing(start: start, length: layout.fileSize)
      for h in holes where h.count >= ReplayWorker.unregisteredHoleFrames {
        for run in layout.fileRuns(h) {
          try uffd.unregister(start: start + run.fileOffset, length: run.count * page)
        }
      }
    } catch { throw EngineError(error.description) }
    do { socket = try UnixSocket.connect(socketPath) } catch {
      throw EngineError("connecting to the engine: \(error.description)")
    }
    var message = [UInt8]()
    var header = kscope_handoff_header(
      magic: KSCOPE_HANDOFF_MAGIC, version: KSCOPE_HANDOFF_VERSION, region_count: 1, pid: UInt32(ProcessUsage.id))
    var region = kscope_handoff_region(host_address: start, length: layout.fileSize, file_offset: 0)
    withUnsafeBytes(of: &header) { message += $0 }
    withUnsafeBytes(of: &region) { message += $0 }
    do { try socket.send(message, descriptor: uffd.fd) } catch {
      socket.close()
      throw EngineError("handing over the userfaultfd: \(error.description)")
    }
    guard socket.readByte(timeoutMilliseconds: 10_000) == UInt8(KSCOPE_HANDOFF_ACK) else {
      socket.close()
      throw EngineError("the engine did not acknowledge the hand-off within 10 s")
    }
  }

  deinit {
    hangUp()
  }

  /// The page of `frame` in this clone, if the layout has it.
  public func page(frame: UInt64) -> UnsafeMutablePointer<UInt8>? {
    guard let offset = layout.fileOffset(frame: frame), offset + layout.pageSize <= layout.fileSize else { return nil }
    return (mapping.base + Int(offset)).assumingMemoryBound(to: UInt8.self)
  }

  /// Unmaps guest RAM (the engine hears it) and hangs up.
  public func hangUp() {
    guard connected else { return }
    connected = false
    mapping.unmap()
    socket.close()
  }
}

/// One replay clone: maps the host cache file privately, registers it with userfaultfd (all
/// but large holes), hands the uffd to the engine, then touches pages in trace order and checks
/// every page it touches against the snapshot (or zeros, for a hole).
public enum ReplayWorker {
  /// Hole runs at least this long (2 MiB) stay unregistered: the kernel zero-fills them itself.
  public static let unregisteredHoleFrames: UInt64 = 512

  public static func run(
    cachePath: String, layout: RAMLayout, holes: [FrameRange], trace: [Access],
    snapshot: any PageSource, socketPath: String
  ) throws(EngineError) -> WorkerReport {
    do { try HostProcess.dieWithParent() } catch { throw EngineError(error.description) }
    let page = Int(layout.pageSize)
    let size = Int(layout.fileSize)
    let client = try EngineClient(cachePath: cachePath, layout: layout, holes: holes, socketPath: socketPath)
    defer { client.hangUp() }

    var holeBits = Bitmap(count: layout.fileSize / UInt64(page))
    for h in holes { holeBits.set(h, limit: holeBits.count) }
    var report = WorkerReport(
      pid: UInt32(ProcessUsage.id), accesses: 0, verifiedPages: 0, mismatches: 0, firstMismatch: nil,
      firstTouchFrames: [], firstTouchNanoseconds: [], firstTouchDoneNanoseconds: [], mappedFrames: [],
      privatePages: 0)
    var seen = Bitmap(count: holeBits.count)
    let expected = UnsafeMutableRawBufferPointer.allocate(byteCount: page, alignment: page)
    defer { expected.deallocate() }
    let began = MonotonicClock.nanoseconds()
    for a in trace {
      guard let p = client.page(frame: a.frame) else { continue }
      report.accesses += 1
      let first = !seen[a.frame]
      let t0 = MonotonicClock.nanoseconds()
      let byte = kscope_touch_read(p)
      let t1 = MonotonicClock.nanoseconds()
      if first {
        seen.insert(a.frame)
        report.firstTouchFrames.append(a.frame)
        report.firstTouchNanoseconds.append(t1 - t0)
        report.firstTouchDoneNanoseconds.append(t1 - began)
        // Every page touched is checked once, before this clone writes to it.
        if holeBits[a.frame] {
          expected.initializeMemory(as: UInt8.self, repeating: 0)
        } else {
          try snapshot.read(into: expected, at: layout.fileOffset(frame: a.frame)!)
        }
        if Memory.equal(p, expected.baseAddress!, count: page) {
          report.verifiedPages += 1
        } else {
          report.mismatches += 1
          if report.firstMismatch == nil { report.firstMismatch = a.frame }
        }
      }
      // A write of the same byte: a private copy, same content.
      if a.write { kscope_touch_write(p, byte) }
    }
    // What this clone has mapped, and how much of it is its own.
    var bits = [UInt64](repeating: 0, count: (size / page + 63) / 64)
    do { report.privatePages = try client.mapping.residency(offset: 0, length: size, bits: &bits).privatePages } catch {
      throw EngineError(error.description)
    }
    for (w, word) in bits.enumerated() where word != 0 {
      for b in 0..<64 where word & (1 << UInt64(b)) != 0 {
        if let frame = layout.frame(fileOffset: UInt64(w * 64 + b) * UInt64(page)) { report.mappedFrames.append(frame) }
      }
    }
    return report
  }
}
