import CKscopeLinux
import Foundation
import Glibc
import KscopeClone

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
  let listenFD: Int32
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
    public var zeroFilled: UInt64 = 0
    /// Misses of frames already in the cache file that faulted again (the page had left it).
    public var refetched: UInt64 = 0
    /// Still connected.
    public var connected = true
    public var connectedAtNanoseconds: UInt64 = 0
    public static let maxFaultRecords = 1 << 20

    init(pid: UInt32, peerPID: Int32) {
      self.pid = pid
      self.peerPID = peerPID
      connectedAtNanoseconds = kscope_now_ns()
    }
  }

  public init(cache: HostCache, policy: any ClonePolicy, layout: RAMLayout, socketPath: String)
    throws(EngineError)
  {
    self.cache = cache
    self.policy = policy
    self.layout = layout
    self.socketPath = socketPath
    listenFD = try check("listening on \(socketPath)", kscope_unix_listen(socketPath))
  }

  deinit {
    close(listenFD)
    unlink(socketPath)
  }

  /// Fetches the policy's resume set (blocking) and queues its background work; returns the
  /// frames fetched and the seconds it took.
  public func prepare() throws(EngineError) -> (pages: UInt64, seconds: Double) {
    let t0 = kscope_now_ns()
    let pages = try cache.ensureInParallel(policy.beforeResume())
    lock.lock()
    queue = policy.backgroundAtStart()
    work.signal()
    lock.unlock()
    return (pages, Double(kscope_now_ns() - t0) / 1e9)
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
    shutdown(listenFD, Int32(SHUT_RDWR))
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
      let ready = kscope_poll2(listenFD, -1, 100)
      if ready < 0 || ready & 4 != 0 { break }
      guard ready & 1 != 0 else { continue }
      let c = kscope_unix_accept(listenFD)
      if c < 0 { continue }
      spawn { self.serve(connection: c) }
    }
  }

  /// One clone: receive its uffd and region, acknowledge, serve faults until it hangs up.
  private func serve(connection sock: Int32) {
    defer { close(sock) }
    let headerSize = MemoryLayout<kscope_handoff_header>.size
    let regionSize = MemoryLayout<kscope_handoff_region>.size
    var message = [UInt8](repeating: 0, count: headerSize + Int(KSCOPE_HANDOFF_MAX_REGIONS) * regionSize)
    var uffd: Int32 = -1
    let n = message.withUnsafeMutableBytes { kscope_recv_fd(sock, $0.baseAddress, $0.count, &uffd) }
    guard n >= headerSize, uffd >= 0 else {
      if uffd >= 0 { close(uffd) }
      record("a clone's hand-off carried no userfaultfd or a short header")
      return
    }
    defer { close(uffd) }
    let header = message.withUnsafeBytes { $0.loadUnaligned(as: kscope_handoff_header.self) }
    guard header.magic == KSCOPE_HANDOFF_MAGIC, header.version == KSCOPE_HANDOFF_VERSION,
      header.region_count >= 1, header.region_count <= KSCOPE_HANDOFF_MAX_REGIONS,
      Int(n) == headerSize + Int(header.region_count) * regionSize
    else {
      record("a clone's hand-off header is malformed")
      return
    }
    let regions = (0..<Int(header.region_count)).map { k in
      message.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: headerSize + k * regionSize, as: kscope_handoff_region.self) }
    }
    // Who the clone really is (the kernel says), to stop it if its pages cannot be served.
    let peer = kscope_peer_pid(sock)
    lock.lock()
    let id = clients.count
    clients.append(ClientRecord(pid: header.pid, peerPID: peer))
    lock.unlock()
    defer {
      lock.lock()
      clients[id].connected = false
      lock.unlock()
    }
    var ack = UInt8(KSCOPE_HANDOFF_ACK)
    guard write(sock, &ack, 1) == 1 else { return }
    if let cpu = handlerCPU { _ = kscope_pin_cpu(cpu) }
    var lastPresentMiss: UInt64 = .max
    let page = layout.pageSize
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * Int(page), alignment: Int(page))
    defer { buffer.deallocate() }
    var event = kscope_uffd_event()
    loop: while true {
      let ready = kscope_poll2(uffd, sock, 100)
      if ready < 0 { break }
      if ready & (2 | 8) != 0 { break }  // the clone hung up (or wrote: it has nothing to say)
      if ready & 1 == 0 {
        if isStopping { break }
        continue
      }
      while true {
        let r = kscope_uffd_read(uffd, &event)
        if r < 0 {
          record("reading the userfaultfd of clone \(header.pid): \(String(cString: strerror(-r)))")
          break loop
        }
        if event.kind == 0 { break }
        if event.kind != 1 { continue }
        let t0 = kscope_now_ns()
        let address = event.address & ~(page - 1)
        guard let region = regions.first(where: { address >= $0.host_address && address - $0.host_address < $0.length }),
          let frame = layout.frame(fileOffset: region.file_offset + (address - region.host_address))
        else {
          // Not ours: wake it so it does not wait forever (it will fault again, and fail loudly).
          _ = kscope_uffd_wake(uffd, address, page)
          continue
        }
        do {
          if cache.holes[frame] {
            // A hole the map proves free or zero: a zero page in this clone only.
            var z = kscope_uffd_zeropage(uffd, address, page)
            var tries = 0
            while z == -EAGAIN && tries < 1000 {
              tries += 1
              z = kscope_uffd_zeropage(uffd, address, page)
            }
            if z < 0 && z != -EEXIST { try check("zero-filling frame \(frame)", z) }
            lock.lock()
            clients[id].zeroFilled += 1
            lock.unlock()
          } else {
            // A frame marked present that faults twice in a row is no longer in the cache file
            // (something punched a hole into it): write it again rather than wake forever.
            var refetch = false
            if cache.isPresent(frame) {
              if lastPresentMiss == frame {
                cache.forget(frame)
                refetch = true
              }
              lastPresentMiss = frame
            } else {
              lastPresentMiss = .max
            }
            let plan = policy.miss(frame: frame)
            try cache.ensure(plan.now + [FrameRange(start: frame, count: 1)], buffer: buffer)
            try check("waking clone \(header.pid)", kscope_uffd_wake(uffd, address, page))
            let ns = kscope_now_ns() - t0
            lock.lock()
            if clients[id].faults.count < ClientRecord.maxFaultRecords { clients[id].faults.append((frame, ns)) }
            clients[id].faultCount += 1
            if refetch { clients[id].refetched += 1 }
            queue.insert(contentsOf: plan.later, at: 0)
            backoffUntil = kscope_now_ns() + policy.backoffMicros * 1000
            if !plan.later.isEmpty { work.signal() }
            lock.unlock()
          }
        } catch {
          // The page cannot be had (the source is gone or broken): the clone must not wait
          // forever, nor run on with a page it never got. Stop it.
          record("serving frame \(frame) of clone \(header.pid): \(error.description)")
          if peer > 0 && peer != getpid() { kill(peer, SIGKILL) }
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
      let now = kscope_now_ns()
      if now < backoffUntil {
        let wait = backoffUntil - now
        work.unlock()
        usleep(UInt32(min(wait / 1000, 100_000)))
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
