import Foundation
import Glibc
import KscopeSnapshot
import Testing

@testable import KscopeClone
@testable import KscopeEngine

/// The long-running engine's pure pieces and its refusals: the shim's hole file, the stats file,
/// and the private directory on a shared tmpfs.
@Suite struct EngineServiceTests {
  typealias S = GuestRAMRegion

  @Test func holeRunsAreFileRangesOfLongRunsOnly() throws {
    // 2 GiB low + 1 GiB above 4 GiB: a hole run across the PCI hole becomes two file ranges.
    let l = try RAMLayout(segments: [
      S(guestPhysicalStart: 0, size: 2 << 30, fileOffset: 0),
      S(guestPhysicalStart: 4 << 30, size: 1 << 30, fileOffset: 2 << 30),
    ])
    let low: UInt64 = (2 << 30) / 4096
    let holes = [
      FrameRange(start: 10, count: 511),  // too short: served with zero pages instead
      FrameRange(start: 1024, count: 512),
      FrameRange(start: low - 512, count: 512 + low + 1024),  // spans the PCI hole
    ]
    let bytes = EngineService.holeRuns(holes, layout: l)
    func u64(_ at: Int) -> UInt64 {
      var v: UInt64 = 0
      for k in 0..<8 { v |= UInt64(bytes[at + k]) << (8 * UInt64(k)) }
      return v
    }
    let pairs: [(UInt64, UInt64)] = stride(from: 0, to: bytes.count, by: 16).map { (u64($0), u64($0 + 8)) }
    #expect(pairs.count == 3)
    #expect(pairs[0] == (UInt64(1024 * 4096), UInt64(512 * 4096)))
    #expect(pairs[1] == ((low - 512) * 4096, UInt64(512 * 4096)))
    #expect(pairs[2] == (UInt64(2 << 30), UInt64(1024 * 4096)))
  }

  @Test func statsRoundTripAndDamageIsOneLine() throws {
    let dir = "/dev/shm/kscope-engine-stats-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let s = EngineStats(
      pid: 7, state: "serving", policy: "kaleidoscope", snapshot: "/s", source: "local", frames: 10,
      holes: 4, preparedPages: 2, prepareSeconds: 0.5, pagesFetched: 3, cacheResidentPages: 3,
      queuedFrames: 0,
      clients: [.init(pid: 9, connected: true, seconds: 1, demandFaults: 5, zeroFilled: 1, refetched: 0,
        faultLatencyUs: .init(count: 5, p50: 20, p99: 40, max: 41))],
      errors: [])
    try EngineStats.encoder.encode(s).write(to: URL(fileURLWithPath: dir + "/stats.json"))
    let back = try EngineStats.read(dir + "/stats.json")
    #expect(back.client(pid: 9)?.demandFaults == 5)
    #expect(back.client(pid: 10) == nil)
    try Data("{\"pid\": \"x\"".utf8).write(to: URL(fileURLWithPath: dir + "/bad.json"))
    #expect { try EngineStats.read(dir + "/bad.json") } throws: { e in
      "\(e)" == "\(dir)/bad.json is damaged"
    }
    #expect(throws: EngineError.self) { try EngineStats.read(dir + "/missing.json") }
  }

  @Test func anEngineDirectoryMustBeOurOwnPrivateDirectory() throws {
    let root = "/dev/shm/kscope-engine-dir-\(getpid())"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let d = try EngineDirectory.forKey("abc", root: root)
    #expect(d.path == root + "/kscope-engines/abc")
    // A symlink planted where the engine's directory goes is refused, as is a directory that
    // others may write into.
    try FileManager.default.createSymbolicLink(atPath: root + "/kscope-engines/link", withDestinationPath: "/tmp")
    #expect(throws: EngineError.self) { try EngineDirectory.forKey("link", root: root) }
    try FileManager.default.createDirectory(atPath: root + "/kscope-engines/open", withIntermediateDirectories: false)
    chmod(root + "/kscope-engines/open", 0o777)
    #expect(throws: EngineError.self) { try EngineDirectory.forKey("open", root: root) }
  }

  @Test func anEngineDirectoryHasOneLiveEngine() throws {
    let root = "/dev/shm/kscope-engine-lock-\(getpid())"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let d = try EngineDirectory.forKey("k", root: root)
    #expect(!EngineService.isLive(d))
    let fd = try #require(EngineService.claim(d))
    #expect(EngineService.claim(d) == nil)
    #expect(EngineService.isLive(d))
    close(fd)
    #expect(!EngineService.isLive(d))
  }
}
