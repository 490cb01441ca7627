import CKscopeLinux
import Foundation
import KscopeClone
import KscopeOS

/// The clone engine: serves the userfaultfd misses of clones that map one host cache file
/// privately. Each clone hands over its uffd on a unix socket (kscope_handoff.h); a handler
/// thread per clone answers each miss with the policy's batch (fetched into the cache file,
/// then the faulting thread is woken and the kernel maps the page from page cache), and one
/// background thread fetches queued work in idle time, holding off after misses.
public final class Engine: @unchecked Sendable {
  public let cache: HostCache
  let policy: any ClonePolicy
  let layout: RAMLayout
  let socketPath: String
  /// The listening socket's inode: deinit removes the path only while it is still this one (an
  /// engine made later on the same path must keep its socket).
  private let socketInode: UInt64?
  let listener: UnixSocket
  /// Guards the queue, the back-off, `stopping`, the client records and the errors; signalled
  /// when work is queued or the engine stops.
  private let work = NSCondition()
  private var lock: NSCondition { work }
  private var queue: [FrameRange] = []
  private var backoffUntil: UInt64 = 0
  private var stopping = false
  private var threads: [Thread] = []
  private var clients: [ClientRecord] = []
  private let done = DispatchGroup()
  public private(set) var errors: [String] = []
  /// The CPU the fault handlers run on (nil: any). On these machines (themselves VMs) waking an
  /// idle CPU costs ~45 µs, so a handler on the faulting thread's CPU answers fastest.
  public var handlerCPU: Int32?

  /// What the engine saw of one clone.
  public struct ClientRecord: Sendable {
    /// The pid the clone's hand-off names, and the one the kernel says (SO_PEERCRED).
    public var pid: UInt32
    public var peerPID: Int32 = 0
    /// Frames whose misses it served, with the engine-side service time (ns); the first
    /// `ClientRecord.maxFaultRecords` of them (a long-running clone's count keeps going on).
    public var faults: [(frame: UInt64, nanoseconds: UInt64)] = []
    public var faultCount: UInt64 = 0
    /// The service time of all its misses, kept as they are served (HdrHistogram).
    public var latency = LatencyRecorder()
    public var zeroFilled: UInt64 = 0
    /// Misses of frames marked present whose page had left the cache file: fetched again.
    public var refetched: UInt64 = 0
    /// Faults on a page that was already there when the engine read them (two threads on one
    /// page, or a batch that landed meanwhile): woken, not counted as misses.
    public var lateFaults: UInt64 = 0
    /// Pages of its guest RAM it gave back (REMOVE), unmapped (UNMAP), and its moves (REMAP).
    public var removedPages: UInt64 = 0
    public var unmappedPages: UInt64 = 0
    public var remaps: UInt64 = 0
    /// Zero fills the kernel refused (EAGAIN) while an event of this clone was pending, and that
    /// were answered again once it was read.
    public var deferredFills: UInt64 = 0
    /// Its address space went away while the engine held one of its faults (ESRCH): the clone
    /// died, nothing waits any more, and the engine dropped it without an error.
    public var ownerGone = false
    /// Still connected.
    public var connected = true
    public var connectedAtNanoseconds: UInt64 = 0
    public static let maxFaultRecords = 1 << 20

    init(pid: UInt32, peerPID: Int32) {
      self.pid = pid
      self.peerPID = peerPID
      connectedAtNanoseconds = MonotonicClock.nanoseconds()
    }
  }

  public init(cache: HostCache, policy: any ClonePolicy, layout: RAMLayout, socketPath: String)
    throws(EngineError)
  {
    self.cache = cache
    self.policy = policy
    self.layout = layout
    self.socketPath = socketPath
    do { listener = try UnixSocket.listen(socketPath) } catch { throw EngineError(error.description) }
    socketInode = Self.inode(socketPath)
  }

  static func inode(_ path: String) -> UInt64? {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.systemFileNumber] as? NSNumber)?.uint64Value
  }

  deinit {
    listener.close()
    if let mine = socketInode, Self.inode(socketPath) == mine { HostProcess.unlink(socketPath) }
  }

  /// Fetches the policy's resume set (blocking) and queues its background work; returns the
  /// frames fetched and the seconds it took.
  public func prepare() throws(EngineError) -> (pages: UInt64, seconds: Double) {
    let t0 = MonotonicClock.nanoseconds()
    let pages = try cache.ensureInParallel(policy.beforeResume())
    lock.lock()
    queue = policy.backgroundAtStart()
    work.signal()
    lock.unlock()
    return (pages, Double(MonotonicClock.nanoseconds() - t0) / 1e9)
  }

  /// Starts the accept loop and the background fetcher.
  public func start() {
    spawn { self.acceptLoop() }
    spawn { self.backgroundLoop() }
  }

  /// Stops every thread (handlers end when their clone's socket closes, or now) and returns
  /// what the engine saw of each clone.
  public func stop() -> [ClientRecord] {
    lock.lock()
    stopping = true
    work.broadcast()
    lock.unlock()
    listener.shutdown()
    _ = done.wait(timeout: .now() + 10)
    return clientRecords()
  }

  /// What the engine has seen of each clone so far, connected or gone.
  public func clientRecords() -> [ClientRecord] {
    lock.lock()
    defer { lock.unlock() }
    return clients
  }

  /// Frames queued for background fetch.
  public var queuedFrames: UInt64 {
    lock.lock()
    defer { lock.unlock() }
    return queue.reduce(0) { $0 + $1.count }
  }

  private func spawn(_ body: @escaping @Sendable () -> Void) {
    done.enter()
    let t = Thread {
      body()
      self.done.leave()
    }
    t.stackSize = 1 << 20
    t.start()
  }

  private var isStopping: Bool {
    lock.lock()
    defer { lock.unlock() }
    return stopping
  }

  private func record(_ message: String) {
    lock.lock()
    errors.append(message)
    lock.unlock()
  }

  private func acceptLoop() {
    while !isStopping {
      let ready = Poll.wait(listener.fd, -1, timeoutMilliseconds: 100)
      if !ready.isDisjoint(with: [.failed, .firstHungUp]) { break }
      guard ready.contains(.first), let c = listener.accept() else { continue }
      spawn { self.serve(connection: c) }
    }
  }

  /// What answering one fault came to.
  private enum Answer { case served, deferred, stop }

  /// One clone: receive its uffd and regions, acknowledge, serve faults and follow its memory
  /// events until it hangs up.
  private func serve(connection sock: UnixSocket) {
    defer { sock.close() }
    let headerSize = MemoryLayout<kscope_handoff_header>.size
    let regionSize = MemoryLayout<kscope_handoff_region>.size
    let message: (bytes: [UInt8], descriptor: Int32?)
    do { message = try sock.receive(capacity: headerSize + Int(KSCOPE_HANDOFF_MAX_REGIONS) * regionSize) } catch {
      record("receiving a clone's hand-off: \(error.description)")
      return
    }
    guard let fd = message.descriptor else {
      record("a clone's hand-off carried no userfaultfd")
      return
    }
    let uffd = Userfaultfd(fd: fd)
    defer { uffd.close() }
    let n = message.bytes.count
    guard n >= headerSize else {
      record("a clone's hand-off header is short")
      return
    }
    let header = message.bytes.withUnsafeBytes { $0.loadUnaligned(as: kscope_handoff_header.self) }
    guard header.magic == KSCOPE_HANDOFF_MAGIC else {
      record("a clone's hand-off header is malformed")
      return
    }
    guard header.version == KSCOPE_HANDOFF_VERSION else {
      record(
        "a clone's hand-off is version \(header.version), this engine speaks \(KSCOPE_HANDOFF_VERSION) (a kscope-shim from another kscope build? run host/setup.sh)"
      )
      return
    }
    guard header.region_count >= 1, header.region_count <= KSCOPE_HANDOFF_MAX_REGIONS,
      n == headerSize + Int(header.region_count) * regionSize
    else {
      record("a clone's hand-off header is malformed")
      return
    }
    let page = layout.pageSize
    let handed = (0..<Int(header.region_count)).map { k in
      let r = message.bytes.withUnsafeBytes {
        $0.loadUnaligned(fromByteOffset: headerSize + k * regionSize, as: kscope_handoff_region.self)
      }
      return RegionTable.Region(address: r.host_address, length: r.length, fileOffset: r.file_offset)
    }
    var regions: RegionTable
    switch RegionTable.validated(handed, pageSize: page, fileSize: layout.fileSize) {
    case .success(let t): regions = t
    case .failure(let e):
      record("a clone's hand-off is refused: \(e.description)")
      return
    }
    // Who the clone really is (the kernel says), to stop it if its pages cannot be served.
    let peer = sock.peerPID ?? 0
    lock.lock()
    let id = clients.count
    clients.append(ClientRecord(pid: header.pid, peerPID: peer))
    lock.unlock()
    defer {
      lock.lock()
      clients[id].connected = false
      lock.unlock()
    }
    guard sock.writeByte(UInt8(KSCOPE_HANDOFF_ACK)) else { return }
    if let cpu = handlerCPU { HostProcess.pinCurrentThread(cpu: cpu) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * Int(page), alignment: Int(page))
    defer { buffer.deallocate() }
    // Faults whose zero page met EAGAIN: an event (REMOVE, UNMAP, REMAP) is pending, and the
    // kernel refuses to fill until this thread has read it. They are answered again after it.
    var deferred: [UInt64] = []
    var deferredSince: UInt64 = 0
    var lastOutside: UInt64 = .max
    var outsideFaults = 0

    func fail(_ message: String) -> Answer {
      // The page cannot be had: the clone must not wait forever, nor run on with a page it never
      // got. Stop it.
      record(message)
      HostProcess.kill(peer)
      return .stop
    }
    func gone() -> Answer {
      // The clone exited (its address space is gone): nothing waits any more, and nobody is to
      // blame. Drop it quietly; the other clones' handlers are untouched.
      lock.lock()
      clients[id].ownerGone = true
      lock.unlock()
      return .stop
    }
    func woken(_ outcome: Userfaultfd.Outcome, _ what: @autoclosure () -> String, address: UInt64) -> Answer {
      switch outcome {
      case .done, .exists, .notRegistered: return .served
      case .ownerGone: return gone()
      case .again:
        if deferred.isEmpty { deferredSince = MonotonicClock.nanoseconds() }
        deferred.append(address)
        return .deferred
      case .failed(let e): return fail("\(what()) of clone \(header.pid): \(OSError.text(errno: e))")
      }
    }
    func answer(_ faultAddress: UInt64) -> Answer {
      let t0 = MonotonicClock.nanoseconds()
      let address = faultAddress & ~(page - 1)
      guard let offset = regions.fileOffset(of: address), let frame = layout.frame(fileOffset: offset),
        frame < cache.frameCount
      else {
        // Not (or no longer) guest RAM of this clone: wake it so it does not wait forever. It
        // faults again on whatever is mapped there now, outside this engine's business. A page
        // that keeps faulting there is still registered, yet the engine was never told where it
        // lies in the RAM file: stop the clone rather than spin with it.
        outsideFaults = address == lastOutside ? outsideFaults + 1 : 1
        lastOutside = address
        if outsideFaults > 1000 {
          return fail("clone \(header.pid) keeps faulting at 0x\(String(address, radix: 16)), outside the guest RAM it handed over")
        }
        return woken(uffd.wake(start: address, length: page), "waking a fault outside guest RAM", address: address)
      }
      if cache.holes[frame] {
        // A hole the map proves free or zero: a zero page in this clone only.
        switch uffd.zeroPage(start: address, length: page) {
        case .done:
          lock.lock()
          clients[id].zeroFilled += 1
          lock.unlock()
          return .served
        case .exists:
          // Another thread's fault on this page had it first. UFFDIO_ZEROPAGE wakes nobody
          // when it fails: wake this fault's thread here.
          lock.lock()
          clients[id].lateFaults += 1
          lock.unlock()
          return woken(uffd.wake(start: address, length: page), "waking a late fault", address: address)
        case .again:
          if deferred.isEmpty { deferredSince = MonotonicClock.nanoseconds() }
          deferred.append(address)
          lock.lock()
          clients[id].deferredFills += 1
          lock.unlock()
          return .deferred
        case .notRegistered:
          // Unmapped or replaced since the fault (its UNMAP event is still to be read): its
          // thread is woken by the unmap, or now.
          return woken(uffd.wake(start: address, length: page), "waking a fault on an unmapped page", address: address)
        case .ownerGone: return gone()
        case .failed(let e): return fail("zero-filling frame \(frame) of clone \(header.pid): \(OSError.text(errno: e))")
        }
      }
      var refetch = false
      if cache.isPresent(frame) {
        if cache.hasData(frame) {
          // In the cache file already: a second thread faulted on the page before the first
          // one's answer landed, or a batch or prefetch wrote it meanwhile. Only a wake is due.
          lock.lock()
          clients[id].lateFaults += 1
          lock.unlock()
          return woken(uffd.wake(start: address, length: page), "waking a late fault", address: address)
        }
        // Marked present but no longer in the cache file (a hole was punched into it): write it
        // again rather than wake a thread that would only fault again.
        cache.forget(frame)
        refetch = true
      }
      let plan = policy.miss(frame: frame)
      do { try cache.ensure(plan.now + [FrameRange(start: frame, count: 1)], buffer: buffer) } catch {
        return fail("serving frame \(frame) of clone \(header.pid): \(error.description)")
      }
      let w = woken(uffd.wake(start: address, length: page), "waking clone", address: address)
      let ns = MonotonicClock.nanoseconds() - t0
      lock.lock()
      if clients[id].faults.count < ClientRecord.maxFaultRecords { clients[id].faults.append((frame, ns)) }
      clients[id].faultCount += 1
      clients[id].latency.record(nanoseconds: ns)
      if refetch { clients[id].refetched += 1 }
      queue.insert(contentsOf: plan.later, at: 0)
      backoffUntil = MonotonicClock.nanoseconds() + policy.backoffMicros * 1000
      if !plan.later.isEmpty { work.signal() }
      lock.unlock()
      return w
    }
    /// Pages of [start, end) inside this clone's guest RAM.
    func guestPages(_ start: UInt64, _ end: UInt64) -> UInt64 {
      var copy = regions
      return copy.remove(start: start, end: end).reduce(0) { $0 + $1.length } / page
    }

    loop: while true {
      // While answers wait on an event, look again soon: the kernel lets fills through only
      // once the thread that caused the event has run on.
      let ready = Poll.wait(uffd.fd, sock.fd, timeoutMilliseconds: deferred.isEmpty ? 100 : 1)
      if ready.contains(.failed) { break }
      // The clone hung up (or wrote: it has nothing to say).
      if !ready.isDisjoint(with: [.second, .secondHungUp]) { break }
      if ready.contains(.first) {
        while true {
          let event: Userfaultfd.Event?
          do { event = try uffd.read() } catch {
            record("reading the userfaultfd of clone \(header.pid): \(error.description)")
            break loop
          }
          guard let event else { break }
          switch event {
          case .pageFault(let address, _):
            if answer(address) == .stop { break loop }
          case .remove(let start, let end):
            // The clone gave pages back (MADV_DONTNEED). Only its own mapping lost them: the
            // cache file keeps its frames (other clones share them, and they are still the
            // snapshot's bytes), so a later touch of a fetched frame is mapped again by the
            // kernel without a fault, and a hole or an unfetched frame faults and is served
            // again, as on first touch.
            let pages = guestPages(start, end)
            lock.lock()
            clients[id].removedPages += pages
            lock.unlock()
          case .unmap(let start, let end):
            let pages = regions.remove(start: start, end: end).reduce(0) { $0 + $1.length } / page
            lock.lock()
            clients[id].unmappedPages += pages
            lock.unlock()
          case .remap(let from, let to, let length):
            guard regions.move(from: from, to: to, length: length) else {
              record("clone \(header.pid) moved its guest RAM into more pieces than the engine tracks")
              HostProcess.kill(peer)
              break loop
            }
            lock.lock()
            clients[id].remaps += 1
            lock.unlock()
          case .other:
            break
          }
        }
      } else if deferred.isEmpty && isStopping {
        break
      }
      if !deferred.isEmpty {
        let retry = deferred
        deferred = []
        for address in retry where answer(address) == .stop { break loop }
        if !deferred.isEmpty && MonotonicClock.nanoseconds() - deferredSince > 5_000_000_000 {
          _ = fail("clone \(header.pid): the kernel refused to fill a page for 5 s (EAGAIN)")
          break loop
        }
      }
    }
  }

  /// Queued prefetch, 64 frames at a time, whenever no miss arrived within the policy's back-off.
  /// With nothing queued it sleeps until a miss queues work (or the engine stops): a long-lived
  /// engine costs no CPU while its clones run from what they have.
  private func backgroundLoop() {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * Int(layout.pageSize), alignment: Int(layout.pageSize))
    defer { buffer.deallocate() }
    while true {
      work.lock()
      while !stopping && queue.isEmpty { work.wait() }
      if stopping {
        work.unlock()
        return
      }
      let now = MonotonicClock.nanoseconds()
      if now < backoffUntil {
        let wait = backoffUntil - now
        work.unlock()
        HostProcess.sleep(microseconds: min(wait / 1000, 100_000))
        continue
      }
      var r = queue.removeFirst()
      let take = min(r.count, 64)
      let batch = FrameRange(start: r.start, count: take)
      if take < r.count {
        r.start += take
        r.count -= take
        queue.insert(r, at: 0)
      }
      work.unlock()
      do { try cache.ensure([batch], buffer: buffer) } catch {
        record("background fetch: \(error.description)")
        return
      }
    }
  }
}
