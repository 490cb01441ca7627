import Foundation
import Testing

@testable import KscopeVM

/// Boots real guests under QEMU (the Debian cloud kernels from host/setup.sh), snapshots and
/// eager-clones them, and checks that clone and parent answer the workload identically. A
/// missing QEMU or kernel fails the test with what to run; nothing is skipped.
///
/// Each test uses its own state directory under /dev/shm and stops every VM it started on the
/// way out, failed or not.
@Suite(.serialized) struct VMEndToEndTests {
  static let assets: String = {
    // Tests/KscopeVMTests/VMEndToEndTests.swift -> repository root.
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("guest-module").path
  }()

  /// The OLAP database size for tests: big enough for real scans and joins, small enough for CI
  /// under TCG (about 5 s for all queries).
  static let testOlapMiB = 32

  /// Runs `body` with a fresh manager; afterwards stops all its VMs and removes its directory.
  /// First it stops what an earlier test process left behind if it died before its cleanup ran
  /// (a state directory whose owning pid is gone).
  func withManager(_ tag: String, _ body: (VMManager) throws -> Void) throws {
    sweepStaleStateDirectories()
    let dir = "/dev/shm/kscope-test-\(tag)-\(getpid())"
    try? FileManager.default.removeItem(atPath: dir)
    let manager = VMManager(stateDir: dir)
    defer {
      let leftovers = manager.stopAll()
      #expect(leftovers.isEmpty, "VMs that would not stop: \(leftovers)")
      try? FileManager.default.removeItem(atPath: dir)
    }
    try body(manager)
  }

  func sweepStaleStateDirectories() {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
    for e in entries where e.hasPrefix("kscope-test-") {
      guard let owner = e.split(separator: "-").last.flatMap({ Int32($0) }), owner != getpid(),
        kill(owner, 0) != 0
      else { continue }
      _ = VMManager(stateDir: "/dev/shm/" + e).stopAll()
      try? FileManager.default.removeItem(atPath: "/dev/shm/" + e)
    }
  }

  func options(_ kernel: String, _ workload: Workload) -> StartOptions {
    var o = StartOptions()
    o.kernelSeries = kernel
    o.workload = workload
    o.olapMiB = Self.testOlapMiB
    o.assets = Self.assets
    o.bootTimeout = 240
    return o
  }

  func digest(_ m: VMManager, _ name: String, _ w: Workload) throws -> String {
    switch w {
    case .web: return try m.runWeb(name: name, requests: 60, seed: 7).digest
    case .olap: return try m.runOlap(name: name, rounds: 1).digest
    }
  }

  @Test(arguments: [("6.1", Workload.web), ("6.12", Workload.web), ("6.1", .olap), ("6.12", .olap)])
  func parentSnapshotEagerClone(kernel: String, workload: Workload) throws {
    try withManager("\(workload.rawValue)\(kernel.replacingOccurrences(of: ".", with: ""))") { m in
      let parent = try m.start(name: "parent", options: options(kernel, workload))
      #expect(parent.state == "running")
      let expected = try GuestKernel.resolve(series: kernel)
      #expect(parent.kernelRelease == expected.release)

      // The guest really runs that kernel, and the control shell works (binary-safe).
      let uname = try m.exec(name: "parent", command: "uname -r")
      #expect(uname.status == 0)
      #expect(uname.text.trimmingCharacters(in: .whitespacesAndNewlines) == expected.release)
      let kpf = try m.exec(name: "parent", command: "head -c 4096 /proc/kpageflags")
      #expect(kpf.output.count == 4096)
      #expect(try m.exec(name: "parent", command: "exit 3").status == 3)

      let before = try digest(m, "parent", workload)
      // The kernel makes boot_id on first read: read it before the snapshot so the clone has it.
      let bootID = try m.exec(name: "parent", command: "cat /proc/sys/kernel/random/boot_id").text
      #expect(bootID.count == 37)

      let snap = m.stateDir + "/snap"
      let manifest = try m.snapshot(name: "parent", to: snap, resume: true)
      #expect(manifest.kernel.release == expected.release)
      #expect(manifest.kernel.buildID == expected.buildID)
      #expect(manifest.kernel.buildID.count == 40)
      #expect(manifest.kernel.version.hasPrefix("#1 SMP"))
      #expect(manifest.ramSize == 512 << 20)
      #expect(
        manifest.memoryLayout == [
          GuestMemoryRegion(guestPhysicalStart: 0, size: 512 << 20, fileOffset: 0)
        ])
      #expect(try SnapshotManifest.load(directory: snap) == manifest)
      // The RAM copy is sparse but holds the booted guest.
      #expect(manifest.ramBytesCopied > 16 << 20)
      #expect(allocatedBytes(snap + "/ram") < 512 << 20)

      let clone = try m.clone(snapshot: snap, name: "clone")
      #expect(clone.state == "running")
      #expect(clone.hostPort != parent.hostPort)
      #expect(clone.clonedFrom == snap)

      // Same answers from the clone as from the parent; the parent keeps running and answering.
      #expect(try digest(m, "clone", workload) == before)
      #expect(try m.status("parent").state == "running")
      #expect(try digest(m, "parent", workload) == before)
      // The clone continued the parent's guest (same boot), it did not boot again.
      #expect(
        try m.exec(name: "clone", command: "cat /proc/sys/kernel/random/boot_id").text == bootID)
      #expect(
        try m.exec(name: "parent", command: "cat /proc/sys/kernel/random/boot_id").text == bootID)

      try m.stop(name: "clone")
      try m.stop(name: "parent")
      #expect(m.names().isEmpty)
    }
  }

  /// A guest of 3 GiB has RAM above 4 GiB: the manifest records QEMU's split, and the clone
  /// still works.
  @Test func aGuestAboveThePCIHoleRecordsTheSplitLayout() throws {
    try withManager("big") { m in
      var o = options("6.1", .web)
      o.memory = 3 << 30
      try m.start(name: "big", options: o)
      let before = try digest(m, "big", .web)
      let manifest = try m.snapshot(name: "big", to: m.stateDir + "/snap", resume: false)
      #expect(manifest.ramSize == 3 << 30)
      #expect(
        manifest.memoryLayout == [
          GuestMemoryRegion(guestPhysicalStart: 0, size: 2 << 30, fileOffset: 0),
          GuestMemoryRegion(guestPhysicalStart: 4 << 30, size: 1 << 30, fileOffset: 2 << 30),
        ])
      // Without --resume the parent stays paused; resume brings it back.
      #expect(try m.status("big").state == "postmigrate")
      try m.resume(name: "big")
      #expect(try m.status("big").state == "running")
      try m.clone(snapshot: m.stateDir + "/snap", name: "bigclone")
      #expect(try digest(m, "bigclone", .web) == before)
    }
  }

  @Test func aGuestThatDoesNotAnswerInTimeFailsWithItsConsoleAndIsStopped() throws {
    try withManager("timeout") { m in
      var o = options("6.1", .web)
      o.bootTimeout = 1.5  // the kernel is still decompressing
      do {
        try m.start(name: "slow", options: o)
        Issue.record("a 1.5 s boot bound did not fail")
      } catch let e as VMError {
        guard case .bootFailed(let reason, _) = e else {
          Issue.record("wrong error: \(e)")
          return
        }
        #expect(reason.contains("did not answer"))
        #expect(!e.description.contains("\n"))
      }
      #expect(m.names().isEmpty, "the failed VM was not cleaned up")
    }
  }

  /// `--agent PATH`: the binary (with the libraries ldd names) becomes /usr/bin/kscope and init
  /// runs `kscope agent`. /bin/echo stands in for the agent: its log then says "agent".
  @Test func anAgentBinaryIsInstalledAndStartedByInit() throws {
    try withManager("agent") { m in
      var o = options("6.1", .web)
      o.agent = "/bin/echo"
      try m.start(name: "withagent", options: o)
      // init starts the agent in the background, so its log may still be empty when the
      // guest first answers: wait for it (bounded), then check exactly what it says.
      var r = try m.exec(name: "withagent", command: "cat /var/log/kscope-agent.log")
      let deadline = Date().addingTimeInterval(20)
      while r.text.isEmpty && Date() < deadline {
        Thread.sleep(forTimeInterval: 0.2)
        r = try m.exec(name: "withagent", command: "cat /var/log/kscope-agent.log")
      }
      #expect(r.status == 0)
      #expect(r.text == "agent\n")
      // Without --agent nothing is installed or started.
      var plain = options("6.1", .web)
      plain.agent = nil
      try m.start(name: "plain", options: plain)
      #expect(try m.exec(name: "plain", command: "test -e /usr/bin/kscope").status == 1)
    }
  }

  @Test func badInputGetsOneLineErrors() throws {
    try withManager("bad") { m in
      var o = options("6.1", .web)
      o.kernelSeries = "5.10"
      #expect(
        throws: VMError.invalidArgument("unknown kernel '5.10' (expected \(GuestKernel.nameHelp))")
      ) {
        try m.start(name: "x", options: o)
      }
      #expect(throws: VMError.self) { try m.start(name: "bad/name", options: options("6.1", .web)) }
      #expect(throws: VMError.noSuchVM("ghost")) { try m.stop(name: "ghost") }
      #expect(throws: VMError.noSuchVM("ghost")) {
        try m.snapshot(name: "ghost", to: m.stateDir + "/s", resume: true)
      }
      // Clone from a directory without a snapshot, and from a damaged manifest.
      let snap = m.stateDir + "/broken"
      try FileManager.default.createDirectory(atPath: snap, withIntermediateDirectories: true)
      #expect(throws: VMError.badSnapshot("\(snap)/manifest.json is missing or unreadable")) {
        try m.clone(snapshot: snap, name: "c")
      }
      try Data("{\"format\": \"kscope-snapshot/1\", \"ram\": 5}".utf8).write(
        to: URL(fileURLWithPath: snap + "/manifest.json"))
      #expect(throws: VMError.self) { try m.clone(snapshot: snap, name: "c") }
      #expect(m.names().isEmpty)
    }
  }
}
