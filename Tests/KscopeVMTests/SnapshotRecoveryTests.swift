import Foundation
import Testing

@testable import KscopeVM

#if canImport(Glibc)
  import Glibc
#endif

/// A real guest (QEMU TCG): the device state goes through descriptors both ways (no exec:),
/// a parent left paused in "postmigrate" can be snapshotted again and resumed, and faults leave
/// nothing behind (issue 10, items 1 and 9).
@Suite(.serialized) struct SnapshotRecoveryTests {
  @Test func snapshotTwiceFromPostmigrateResumeAndClone() throws {
    let e2e = VMEndToEndTests()
    try e2e.withManager("recover") { m in
      try m.start(name: "parent", options: e2e.options("6.1", .web))
      let before = try e2e.digest(m, "parent", .web)
      // A snapshot into a regular file is refused with a plain sentence, before anything.
      try "x".write(toFile: m.stateDir + "/afile", atomically: false, encoding: .utf8)
      #expect { try m.snapshot(name: "parent", to: m.stateDir + "/afile", resume: true) } throws: {
        "\($0)".contains("is a regular file, not a directory")
          && !"\($0)".contains("NSCocoaErrorDomain")
      }
      // First snapshot leaves the parent paused (postmigrate), as a killed --resume would.
      let s1 = m.stateDir + "/snap1"
      try m.snapshot(name: "parent", to: s1, resume: false)
      #expect(try m.status("parent").state == "postmigrate")
      // A stale partial directory of a killed snapshot (pid 2^22-1 is never alive here).
      let stale = m.stateDir + "/.snap2.partial-4194303"
      try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)
      // The second snapshot starts from postmigrate and resumes the parent.
      let s2 = m.stateDir + "/snap2"
      try m.snapshot(name: "parent", to: s2, resume: true)
      #expect(try m.status("parent").state == "running")
      #expect(!FileManager.default.fileExists(atPath: stale))
      let leftovers = try FileManager.default.contentsOfDirectory(atPath: m.stateDir).filter {
        $0.contains(".partial-")
      }
      #expect(leftovers.isEmpty)
      #expect(FileManager.default.fileExists(atPath: s2 + "/manifest.json"))
      // `vm resume` of a running VM is harmless; of a paused one, resumes it.
      try m.snapshot(name: "parent", to: m.stateDir + "/snap3", resume: false)
      try m.resume(name: "parent")
      #expect(try m.status("parent").state == "running")
      // The clone loads its device state from the descriptor kscope passed.
      let clone = try m.clone(snapshot: s2, name: "clone")
      #expect(clone.state == "running")
      #expect(try e2e.digest(m, "clone", .web) == before)
      // A snapshot of a dead VM leaves no directory.
      try m.stop(name: "clone")
      let dead = m.stateDir + "/deadsnap"
      let pid = try #require(m.livePid(try m.record("parent").config))
      #expect(pid > 1)
      if pid > 1 { kill(pid, SIGKILL) }
      Thread.sleep(forTimeInterval: 0.5)
      #expect(throws: VMError.self) { try m.snapshot(name: "parent", to: dead, resume: true) }
      #expect(!FileManager.default.fileExists(atPath: dead))
    }
  }
}
