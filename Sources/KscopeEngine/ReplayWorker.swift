import CKscopeLinux
import Glibc
import KscopeClone

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
    try check("binding to the replay's lifetime", kscope_die_with_parent())
    let page = Int(layout.pageSize)
    let size = Int(layout.fileSize)
    let fd = open(cachePath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else { throw EngineError("cannot open \(cachePath): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    // Private: the clone's writes are its own copies; unwritten pages stay the cache's.
    guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
      throw EngineError("cannot map \(cachePath): \(String(cString: strerror(errno)))")
    }
    defer { munmap(base, size) }
    let start = UInt64(UInt(bitPattern: base))
    let uffd = try check("userfaultfd", kscope_uffd_open())
    var uffdOpen = true
    defer { if uffdOpen { close(uffd) } }
    try check("registering the mapping", kscope_uffd_register_missing(uffd, start, UInt64(size)))
    for h in holes where h.count >= unregisteredHoleFrames {
      for run in layout.fileRuns(h) {
        try check("unregistering a free run", kscope_uffd_unregister(uffd, start + run.fileOffset, run.count * UInt64(page)))
      }
    }
    let sock = try check("connecting to the engine at \(socketPath)", kscope_unix_connect(socketPath))
    defer { close(sock) }
    var message = [UInt8]()
    var header = kscope_handoff_header(magic: KSCOPE_HANDOFF_MAGIC, version: KSCOPE_HANDOFF_VERSION, region_count: 1, pid: UInt32(getpid()))
    var region = kscope_handoff_region(host_address: start, length: UInt64(size), file_offset: 0)
    withUnsafeBytes(of: &header) { message += $0 }
    withUnsafeBytes(of: &region) { message += $0 }
    try check("handing over the userfaultfd", message.withUnsafeBytes { kscope_send_fd(sock, $0.baseAddress, $0.count, uffd) })
    // Nothing is touched before the engine says it serves.
    var ack: UInt8 = 0
    let ready = kscope_poll2(sock, -1, 10_000)
    guard ready & 1 != 0, read(sock, &ack, 1) == 1, ack == UInt8(KSCOPE_HANDOFF_ACK) else {
      throw EngineError("the engine did not acknowledge the hand-off within 10 s")
    }
    // The engine holds the only reference from now on: if it goes away, the faults it leaves
    // are released rather than left waiting on a descriptor nobody reads.
    close(uffd)
    uffdOpen = false

    var holeBits = Bitmap(count: layout.fileSize / UInt64(page))
    for h in holes { holeBits.set(h, limit: holeBits.count) }
    var report = WorkerReport(
      pid: UInt32(getpid()), accesses: 0, verifiedPages: 0, mismatches: 0, firstMismatch: nil,
      firstTouchFrames: [], firstTouchNanoseconds: [], firstTouchDoneNanoseconds: [], mappedFrames: [],
      privatePages: 0)
    var seen = Bitmap(count: holeBits.count)
    let expected = UnsafeMutableRawBufferPointer.allocate(byteCount: page, alignment: page)
    defer { expected.deallocate() }
    let began = kscope_now_ns()
    for a in trace {
      guard let offset = layout.fileOffset(frame: a.frame), offset + UInt64(page) <= UInt64(size) else { continue }
      report.accesses += 1
      let p = (base + Int(offset)).assumingMemoryBound(to: UInt8.self)
      let first = !seen[a.frame]
      let t0 = kscope_now_ns()
      let byte = kscope_touch_read(p)
      let t1 = kscope_now_ns()
      if first {
        seen.insert(a.frame)
        report.firstTouchFrames.append(a.frame)
        report.firstTouchNanoseconds.append(t1 - t0)
        report.firstTouchDoneNanoseconds.append(t1 - began)
        // Every page touched is checked once, before this clone writes to it.
        if holeBits[a.frame] {
          expected.initializeMemory(as: UInt8.self, repeating: 0)
        } else {
          try snapshot.read(into: expected, at: offset)
        }
        if memcmp(p, expected.baseAddress!, page) == 0 {
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
    let pages = UInt64(size / page)
    var bits = [UInt64](repeating: 0, count: Int((pages + 63) / 64))
    var present: UInt64 = 0
    var priv: UInt64 = 0
    try check("reading pagemap", bits.withUnsafeMutableBufferPointer { kscope_pagemap_scan(start, UInt64(size), &present, &priv, $0.baseAddress) })
    report.privatePages = priv
    for (w, word) in bits.enumerated() where word != 0 {
      for b in 0..<64 where word & (1 << UInt64(b)) != 0 {
        if let frame = layout.frame(fileOffset: UInt64(w * 64 + b) * UInt64(page)) { report.mappedFrames.append(frame) }
      }
    }
    return report
  }
}
