import Foundation
import KscopeCore
import Testing

@testable import KscopeVM

#if canImport(Glibc)
  import Glibc
#endif

/// Hint regions from another machine, and what faults leave behind (issue 10, items 8 and 9).
@Suite struct FaultTests {
  static func hints(totalFrames: UInt64, covered: Int = 1024, regionSize: Int = 1 << 20) throws
    -> HintSet
  {
    let table = FrameClassTable(
      entries: [UInt16](repeating: FrameEntry(.free).rawValue, count: covered),
      totalFrames: totalFrames)
    let content = HintContent(
      kernelRelease: "6.1.0-56-cloud-amd64", buildID: Array(0..<20), published: 1_790_000_000,
      kernel: KernelSymbolHints(), frames: table, files: [], metadata: [])
    let e = try HintFormat.encode(content, regionSize: regionSize, generation: 2)
    return try HintFormat.decode(e.bytes + [UInt8](repeating: 0, count: regionSize - e.bytes.count))
  }

  @Test func hintsForAnotherMachineAreRefused() throws {
    let guestEnd: UInt64 = 512 << 20  // 131,072 frames
    // The guest's own table (firmware may keep the top pages: a little less is fine).
    #expect(
      HintFit.mismatch(
        try Self.hints(totalFrames: 131_072), guestEnd: guestEnd, regionSize: 1 << 20) == nil)
    #expect(
      HintFit.mismatch(try Self.hints(totalFrames: 131_040), guestEnd: guestEnd, regionSize: nil)
        == nil)
    // Another machine's: 25 GiB of frames, or far fewer than this guest has.
    let other = HintFit.mismatch(
      try Self.hints(totalFrames: 6_553_600), guestEnd: guestEnd, regionSize: nil)
    #expect(other?.contains("6553600 frames, the guest has 131072") == true)
    #expect(
      HintFit.mismatch(try Self.hints(totalFrames: 65_536), guestEnd: guestEnd, regionSize: nil)
        != nil)
    // A region of another size than the snapshot's.
    #expect(
      HintFit.mismatch(
        try Self.hints(totalFrames: 131_072), guestEnd: guestEnd, regionSize: 4 << 20) != nil)
  }

  @Test func staleBuildAndSnapshotDirectoriesAreRemoved() throws {
    let dir = NSTemporaryDirectory() + "kscope-stale-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let fm = FileManager.default
    // 4194303 (2^22-1, the largest pid) is not a live process here; our own pid is.
    for name in [
      ".tmp-0123456789abcdef-4194303", ".tmp-0123456789abcdef-\(getpid())", "0123456789abcdef",
      ".snap.partial-4194303", ".snap.partial-\(getpid())", "snap",
    ] {
      try fm.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
    }
    #expect(kill(4_194_303, 0) != 0)
    GuestImage.removeStaleBuilds(in: dir)
    VMManager(stateDir: dir).removeStalePartials(in: dir)
    #expect(
      try fm.contentsOfDirectory(atPath: dir).sorted()
        == [
          ".snap.partial-\(getpid())", ".tmp-0123456789abcdef-\(getpid())", "0123456789abcdef",
          "snap",
        ].sorted())
  }

  @Test func childToolsDieWithKscope() throws {
    // The child asks the kernel for its parent-death signal (prctl PR_GET_PDEATHSIG = 2).
    let out = try ProcessRunner.run([
      "python3", "-c",
      "import ctypes; c = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(c)); print(c.value)",
    ])
    #expect(
      String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        == "\(SIGKILL)")
  }
}
