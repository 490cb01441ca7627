import CKscopeLinux
import Foundation
import Glibc
import KscopeCore
import KscopeOS
import Synchronization
import Testing

@testable import KscopeClone
@testable import KscopeEngine

/// The rest of the userfaultfd protocol, on real userfaultfd: a clone that gives pages back
/// (REMOVE), unmaps or replaces part of its guest RAM (UNMAP), moves part of it (REMAP), threads
/// that fault on one page together, fills the kernel refuses while an event is pending (EAGAIN),
/// and a clone that hangs up while a fault is being served. The clone runs in this process
/// (EngineClient), the engine's handler on its own thread.
@Suite(.serialized) struct EngineEventTests {
  /// Frames 2048..<2052 are holes the engine serves with zero pages (too short to leave
  /// unregistered); everything else is the snapshot's random bytes.
  static let smallHoles = [FrameRange(start: 2048, count: 4)]
  static let page = 4096

  /// An engine serving one fixture, with the snapshot's bytes at hand to compare.
  final class Run {
    let f: EngineTests.Fixture
    let cache: HostCache
    let engine: Engine
    let snapshot: [UInt8]
    var socket: String { f.dir + "/sock" }

    init(
      _ f: EngineTests.Fixture, source: (any PageSource)? = nil,
      holes: [FrameRange] = EngineEventTests.smallHoles
    ) throws {
      self.f = f
      snapshot = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f.ram)))
      cache = try HostCache(
        path: f.dir + "/cache", layout: f.layout, source: try source ?? LocalRAMSource(path: f.ram),
        frameCount: EngineTests.frames, holes: holes)
      engine = try Engine(
        cache: cache, policy: OnDemandPolicy(), layout: f.layout, socketPath: f.dir + "/sock")
      engine.start()
    }

    func client() throws -> EngineClient {
      try EngineClient(
        cachePath: cache.path, layout: f.layout, holes: EngineEventTests.smallHoles,
        socketPath: socket)
    }

    /// The snapshot's page of `frame`, or zeros for a hole.
    func expected(_ frame: UInt64) -> ArraySlice<UInt8> {
      if EngineEventTests.smallHoles.contains(where: { $0.start <= frame && frame < $0.end }) {
        return ArraySlice(repeating: 0, count: EngineEventTests.page)
      }
      let o = Int(frame) * EngineEventTests.page
      return snapshot[o..<o + EngineEventTests.page]
    }

    func matches(_ p: UnsafeMutablePointer<UInt8>, _ frame: UInt64) -> Bool {
      expected(frame).withUnsafeBytes { memcmp(p, $0.baseAddress!, EngineEventTests.page) == 0 }
    }

    deinit { cache.remove() }
  }

  /// A raw pointer handed to a thread (the test keeps the mapping alive until it joins).
  struct Shared: @unchecked Sendable { let p: UnsafeMutablePointer<UInt8> }

  /// Runs `body` on a new thread; the returned semaphore is signalled when it ends.
  static func thread(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      body()
      done.signal()
    }
    return done
  }

  @Test func pagesGivenBackAreServedAgainWithTheSnapshotsBytes() throws {
    let r = try Run(try EngineTests.Fixture())
    let c = try r.client()
    // Data frames 3000..<3008 and the four small holes, read, then written with other bytes.
    let frames = Array(UInt64(3000)..<3008) + Array(UInt64(2048)..<2052)
    for f in frames {
      let p = c.page(frame: f)!
      #expect(r.matches(p, f), "frame \(f) on first touch")
      p.pointee = p.pointee ^ 0xff
    }
    // Given back (MADV_DONTNEED): the clone's own copies are gone.
    try c.mapping.discard(offset: 2048 * Self.page, length: 4 * Self.page)
    try c.mapping.discard(offset: 3000 * Self.page, length: 8 * Self.page)
    for f in frames {
      #expect(r.matches(c.page(frame: f)!, f), "frame \(f) after it was given back")
    }
    c.hangUp()
    let records = r.engine.stop()
    #expect(r.engine.errors.isEmpty, "\(r.engine.errors)")
    let rec = try #require(records.first)
    // The engine heard both, counting only guest RAM.
    #expect(rec.removedPages == 12)
    // Holes fault again and get a zero page again; fetched frames stay in the cache file
    // (other clones share them) and the kernel maps them again without a fault.
    #expect(rec.zeroFilled == 8)
    #expect(rec.faultCount == 8)
    // The running latency histogram saw every miss as it was served.
    #expect(rec.latency.summary.count == 8)
    #expect(r.cache.presentBitmap.population == 8)
    // Unmapped at the end: the engine heard that too.
    #expect(rec.unmappedPages == EngineTests.frames)
  }

  @Test func aMovedRangeIsStillServedWithTheSnapshotsBytes() throws {
    let r = try Run(try EngineTests.Fixture())
    let c = try r.client()
    #expect(r.matches(c.page(frame: 100)!, 100))
    // 64 frames from 5000 on, never touched, move elsewhere (mremap): without the REMAP event
    // the kernel would drop their registration and they would read as zeros.
    let moved = try c.mapping.move(offset: 5000 * Self.page, length: 64 * Self.page)
    for k in 0..<64 {
      let p = (moved + k * Self.page).assumingMemoryBound(to: UInt8.self)
      #expect(r.matches(p, UInt64(5000 + k)), "moved frame \(5000 + k)")
    }
    // The range left behind is no longer guest RAM; the rest still is.
    #expect(r.matches(c.page(frame: 6000)!, 6000))
    _ = munmap(moved, 64 * Self.page)
    c.hangUp()
    let records = r.engine.stop()
    #expect(r.engine.errors.isEmpty, "\(r.engine.errors)")
    let rec = try #require(records.first)
    #expect(rec.remaps == 1)
    #expect(rec.faultCount == 66)
  }

  @Test func threadsFaultingOnePageFetchItOnceAndAllSeeIt() throws {
    // Each read takes 20 ms (nbdkit's delay filter), so the other threads' faults on a page
    // arrive while the first one's is being served.
    let f = try EngineTests.Fixture()
    let server = try NBDServer(file: f.ram, delayMilliseconds: 20)
    let r = try Run(f, source: try NBDSource(uri: server.uri))
    let c = try r.client()
    let threads = 4
    let frames = Array(UInt64(4000)..<4040) + Array(UInt64(2048)..<2052)
    let base = Shared(p: c.mapping.base.assumingMemoryBound(to: UInt8.self))
    // All threads touch each page at once (a spin barrier per page).
    let barrier = SpinBarrier(threads: threads)
    let bad = Atomic<Int>(0)
    let snapshot = r.snapshot
    let holes = Self.smallHoles
    let done = (0..<threads).map { _ in
      Self.thread {
        for (k, f) in frames.enumerated() {
          barrier.wait(step: k)
          let p = base.p + Int(f) * Self.page
          _ = kscope_touch_read(p)
          let hole = holes.contains { $0.start <= f && f < $0.end }
          let ok = snapshot.withUnsafeBytes { s in
            hole
              ? Memory.isZero(UnsafeRawBufferPointer(start: p, count: Self.page))
              : memcmp(p, s.baseAddress! + Int(f) * Self.page, Self.page) == 0
          }
          if !ok { bad.add(1, ordering: .relaxed) }
        }
      }
    }
    for d in done { #expect(d.wait(timeout: .now() + 60) == .success) }
    #expect(bad.load(ordering: .relaxed) == 0, "pages differed from the snapshot")
    c.hangUp()
    let records = r.engine.stop()
    #expect(r.engine.errors.isEmpty, "\(r.engine.errors)")
    let rec = try #require(records.first)
    // Each data page is one miss, fetched once; each hole one zero page. The other threads'
    // faults on the same page are woken with the first (UFFDIO_WAKE and UFFDIO_ZEROPAGE wake
    // every waiter on the page, and the kernel drops their unread messages), or arrive late
    // and are only woken: never served twice.
    #expect(rec.faultCount == 40)
    #expect(rec.refetched == 0)
    #expect(rec.zeroFilled == 4)
    #expect(r.cache.presentBitmap.population == 40)
  }

  /// The engine held up 300 ms on data page 3000 (nbdkit's delay filter), a second thread
  /// faulting on hole 2049 meanwhile, and a third started by `meanwhile` (given the clone and
  /// its RAM): returns once all three are done and page 3000 read the snapshot's bytes, with
  /// the run, the clone and the NBD server (kept alive for the caller's checks).
  static func withHeldUpFaults(
    _ meanwhile: (EngineClient, Shared) -> DispatchSemaphore
  ) throws -> (Run, EngineClient, NBDServer) {
    let f = try EngineTests.Fixture()
    let server = try NBDServer(file: f.ram, delayMilliseconds: 300)
    let r = try Run(f, source: try NBDSource(uri: server.uri))
    let c = try r.client()
    let base = Shared(p: c.mapping.base.assumingMemoryBound(to: UInt8.self))
    let slow = thread { _ = kscope_touch_read(base.p + 3000 * page) }
    usleep(50_000)
    let hole = thread { _ = kscope_touch_read(base.p + 2049 * page) }
    usleep(50_000)
    let third = meanwhile(c, base)
    for d in [slow, hole, third] { #expect(d.wait(timeout: .now() + 20) == .success) }
    #expect(r.matches(c.page(frame: 3000)!, 3000))
    return (r, c, server)
  }

  @Test func aZeroFillRefusedWhileAnEventIsPendingIsAnsweredAfterIt() throws {
    // The engine is held up 300 ms on a data page (nbdkit's delay filter), while a second
    // thread faults on a hole and a third gives pages back: the hole's fault is read first,
    // the kernel refuses its zero page (EAGAIN) until the REMOVE behind it is read.
    let (r, c, server) = try Self.withHeldUpFaults { c, _ in
      let mapping = c.mapping
      return Self.thread { try? mapping.discard(offset: 6000 * Self.page, length: 16 * Self.page) }
    }
    #expect(r.matches(c.page(frame: 2049)!, 2049))
    c.hangUp()
    let records = r.engine.stop()
    #expect(r.engine.errors.isEmpty, "\(r.engine.errors)")
    let rec = try #require(records.first)
    #expect(rec.deferredFills >= 1, "the zero page was never refused: the test proved nothing")
    #expect(rec.zeroFilled == 1)
    #expect(rec.removedPages == 16)
    withExtendedLifetime(server) {}
  }

  @Test func aFaultOnARangeReplacedMeanwhileWakesAndTheCloneGoesOn() throws {
    // As above, but the third thread maps anonymous memory over the hole's range (MAP_FIXED:
    // an unmap): the held-up fault is no longer guest RAM. It is woken (and reads the new
    // mapping's zeros); the clone is neither stopped nor left waiting.
    let (r, c, server) = try Self.withHeldUpFaults { _, base in
      Self.thread {
        _ = mmap(
          base.p + 2048 * Self.page, 4 * Self.page, PROT_READ | PROT_WRITE,
          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
      }
    }
    // The rest of guest RAM is still served.
    #expect(r.matches(c.page(frame: 7000)!, 7000))
    c.hangUp()
    let records = r.engine.stop()
    #expect(r.engine.errors.isEmpty, "\(r.engine.errors)")
    let rec = try #require(records.first)
    #expect(rec.unmappedPages >= 4)
    #expect(rec.zeroFilled == 0)
    withExtendedLifetime(server) {}
  }

  @Test func aCloneThatHangsUpMidFaultEndsOnlyItself() throws {
    // One clone hangs up while the engine is still fetching its page; another clone goes on
    // being served, and nothing is recorded as an error.
    let f = try EngineTests.Fixture()
    let server = try NBDServer(file: f.ram, delayMilliseconds: 200)
    let r = try Run(f, source: try NBDSource(uri: server.uri))
    let gone = try r.client()
    let base = Shared(p: gone.mapping.base.assumingMemoryBound(to: UInt8.self))
    let faulting = Self.thread { _ = kscope_touch_read(base.p + 1000 * Self.page) }
    usleep(50_000)
    let other = try r.client()
    #expect(faulting.wait(timeout: .now() + 20) == .success)
    gone.hangUp()
    #expect(r.matches(other.page(frame: 1500)!, 1500))
    let live = r.engine.clientRecords()
    #expect(live.count == 2)
    other.hangUp()
    let records = r.engine.stop()
    #expect(r.engine.errors.isEmpty, "\(r.engine.errors)")
    #expect(records.allSatisfy { !$0.connected })
  }

  @Test func aCloneFaultingOutsideTheRAMItHandedOverIsStoppedNotSpunWith() throws {
    // The clone registers all of its mapping but hands over only the first half: a fault in
    // the second half is nobody's page. Woken, it faults again at once; the engine ends that
    // (a clone of another process would be killed) instead of spinning with it forever.
    let r = try Run(try EngineTests.Fixture())
    let size = Int(r.f.layout.fileSize)
    let mapping = try PrivateMapping(path: r.cache.path, size: size)
    let uffd = try Userfaultfd.open()
    try uffd.registerMissing(start: mapping.address, length: UInt64(size))
    let sock = try UnixSocket.connect(r.socket)
    defer { sock.close() }
    var header = kscope_handoff_header(
      magic: KSCOPE_HANDOFF_MAGIC, version: KSCOPE_HANDOFF_VERSION, region_count: 1, pid: 1)
    var region = kscope_handoff_region(
      host_address: mapping.address, length: UInt64(size / 2), file_offset: 0)
    var message = [UInt8]()
    withUnsafeBytes(of: &header) { message += $0 }
    withUnsafeBytes(of: &region) { message += $0 }
    try sock.send(message, descriptor: uffd.fd)
    uffd.close()
    #expect(sock.readByte(timeoutMilliseconds: 5000) == UInt8(KSCOPE_HANDOFF_ACK))
    let base = Shared(p: mapping.base.assumingMemoryBound(to: UInt8.self))
    let inside = Self.thread { _ = kscope_touch_read(base.p + 10 * Self.page) }
    #expect(inside.wait(timeout: .now() + 20) == .success)
    let outside = Self.thread { _ = kscope_touch_read(base.p + size / 2 + 10 * Self.page) }
    #expect(
      outside.wait(timeout: .now() + 20) == .success,
      "the fault outside guest RAM was never released")
    _ = r.engine.stop()
    #expect(
      r.engine.errors.contains { $0.contains("outside the guest RAM it handed over") },
      "\(r.engine.errors)")
  }

  /// Sends a hand-off of `version` with one region, and says whether the engine acknowledged.
  static func handOff(_ r: Run, version: UInt32, region: kscope_handoff_region) throws -> Bool {
    let uffd = try Userfaultfd.open()
    defer { uffd.close() }
    let sock = try UnixSocket.connect(r.socket)
    defer { sock.close() }
    var header = kscope_handoff_header(
      magic: KSCOPE_HANDOFF_MAGIC, version: version, region_count: 1, pid: 1)
    var region = region
    var message = [UInt8]()
    withUnsafeBytes(of: &header) { message += $0 }
    withUnsafeBytes(of: &region) { message += $0 }
    try sock.send(message, descriptor: uffd.fd)
    return sock.readByte(timeoutMilliseconds: 5000) == UInt8(KSCOPE_HANDOFF_ACK)
  }

  @Test func handOffsOfAnotherVersionOrOutsideTheRAMFileAreRefused() throws {
    let r = try Run(try EngineTests.Fixture())
    // Version 1 promised no events: the engine says why it refuses (an old shim).
    let v1 = try Self.handOff(
      r, version: 1,
      region: kscope_handoff_region(host_address: 1 << 30, length: 4096, file_offset: 0))
    #expect(!v1)
    // A region reaching past the RAM file.
    let outside = try Self.handOff(
      r, version: KSCOPE_HANDOFF_VERSION,
      region: kscope_handoff_region(
        host_address: 1 << 30, length: 8192, file_offset: EngineTests.frames * 4096 - 4096))
    #expect(!outside)
    _ = r.engine.stop()
    #expect(r.engine.errors.count == 2)
    #expect(
      r.engine.errors.first?.contains("version 1, this engine speaks 2") == true,
      "\(r.engine.errors)")
    #expect(
      r.engine.errors.last?.contains("outside the address space or the RAM file") == true,
      "\(r.engine.errors)")
  }
}

/// RegionTable: the hand-off's regions, checked, and kept as a clone unmaps and moves them.
@Suite struct RegionTableTests {
  typealias R = RegionTable.Region
  static let page: UInt64 = 4096

  func table(_ rs: [R], fileSize: UInt64 = 1 << 30) throws -> RegionTable {
    try RegionTable.validated(rs, pageSize: Self.page, fileSize: fileSize).get()
  }

  @Test func handOffRegionsAreChecked() throws {
    func refused(_ rs: [R]) -> Bool {
      if case .failure = RegionTable.validated(rs, pageSize: Self.page, fileSize: 1 << 20) {
        return true
      }
      return false
    }
    #expect(refused([R(address: 0x1000, length: 0, fileOffset: 0)]))
    #expect(refused([R(address: 0x1001, length: 0x1000, fileOffset: 0)]))
    #expect(refused([R(address: 0x1000, length: 0x1000, fileOffset: 0x800)]))
    #expect(refused([R(address: UInt64.max - 0xfff, length: 0x2000, fileOffset: 0)]))
    #expect(refused([R(address: 0x1000, length: 0x2000, fileOffset: (1 << 20) - 0x1000)]))
    #expect(
      refused([
        R(address: 0x10000, length: 0x2000, fileOffset: 0),
        R(address: 0x11000, length: 0x1000, fileOffset: 0x4000),
      ]))
    let t = try table([
      R(address: 0x20000, length: 0x2000, fileOffset: 0x4000),
      R(address: 0x10000, length: 0x2000, fileOffset: 0),
    ])
    #expect(t.regions.map(\.address) == [0x10000, 0x20000])
    #expect(t.fileOffset(of: 0x10fff) == 0xfff)
    #expect(t.fileOffset(of: 0x21000) == 0x5000)
    #expect(t.fileOffset(of: 0x12000) == nil)
    #expect(t.fileOffset(of: 0xffff) == nil)
  }

  @Test func unmappingSplitsAndForgets() throws {
    var t = try table([R(address: 0x100000, length: 0x10000, fileOffset: 0x8000)])
    let cut = t.remove(start: 0x104000, end: 0x106000)
    #expect(cut == [R(address: 0x104000, length: 0x2000, fileOffset: 0xc000)])
    #expect(
      t.regions == [
        R(address: 0x100000, length: 0x4000, fileOffset: 0x8000),
        R(address: 0x106000, length: 0xa000, fileOffset: 0xe000),
      ])
    #expect(t.fileOffset(of: 0x105000) == nil)
    #expect(t.fileOffset(of: 0x106000) == 0xe000)
    // Across both pieces and beyond.
    t.remove(start: 0, end: 0x107000)
    #expect(t.regions == [R(address: 0x107000, length: 0x9000, fileOffset: 0xf000)])
    let none = t.remove(start: 5, end: 5)
    #expect(none.isEmpty)
  }

  @Test func movingCarriesFileOffsets() throws {
    var t = try table([R(address: 0x100000, length: 0x10000, fileOffset: 0)])
    let moved = t.move(from: 0x108000, to: 0x500000, length: 0x4000)
    #expect(moved)
    #expect(t.fileOffset(of: 0x500000) == 0x8000)
    #expect(t.fileOffset(of: 0x503fff) == 0xbfff)
    #expect(t.fileOffset(of: 0x108000) == nil)
    #expect(t.fileOffset(of: 0x10c000) == 0xc000)
    // Moved over guest RAM: what was at the destination is replaced.
    let back = t.move(from: 0x500000, to: 0x100000, length: 0x2000)
    #expect(back)
    #expect(t.fileOffset(of: 0x100000) == 0x8000)
    #expect(t.fileOffset(of: 0x102000) == 0x2000)
    let overflow = t.move(from: UInt64.max - 10, to: 0, length: 0x1000)
    #expect(!overflow)
  }
}

/// All threads meet before each step: one counter, step k passes once it reaches
/// threads x (k + 1). Spinning, so they leave together and fault at once.
final class SpinBarrier: Sendable {
  let arrived = Atomic<Int>(0)
  let threads: Int
  init(threads: Int) { self.threads = threads }
  func wait(step: Int) {
    arrived.add(1, ordering: .sequentiallyConsistent)
    // Yielding: with more threads than CPUs, the last to arrive must get to run.
    while arrived.load(ordering: .sequentiallyConsistent) < threads * (step + 1) { sched_yield() }
  }
}
