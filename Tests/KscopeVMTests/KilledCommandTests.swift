import Foundation
import KscopeOS
import KscopeSnapshot
import KscopeTestSupport
import Testing

@testable import KscopeVM

#if canImport(Glibc)
  import Glibc
#endif

/// Issue 10, item 9, through the CLI as a user meets it: a `kscope` process SIGKILLed half-way
/// leaves nothing stuck (no paused parent without a way back, no child running on, no partial
/// output after the next run). And item 5: a manifest's stored QEMU command line never reaches
/// the clone's QEMU.
@Suite(.serialized) struct KilledCommandTests {
  /// Processes whose parent is `parent`, as (pid, command name), from /proc.
  static func children(of parent: pid_t) -> [(pid: pid_t, name: String)] {
    var found: [(pid_t, String)] = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
      guard let pid = pid_t(entry),
        let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
        let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
      else { continue }
      let name = String(stat[stat.index(after: open)..<close])
      let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
      if fields.count > 1, pid_t(fields[1]) == parent { found.append((pid, name)) }
    }
    return found
  }

  /// Alive and not a zombie.
  static func running(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return false }
    return !stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
  }

  static func reap(_ pid: pid_t) {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
  }

  /// The QEMU command line of a running VM, from the kernel (/proc/PID/cmdline).
  static func commandLine(_ pid: Int32) throws -> [String] {
    let bytes = try Files.read("/proc/\(pid)/cmdline", limit: 1 << 20)
    return bytes.split(separator: 0, omittingEmptySubsequences: false).map {
      String(decoding: $0, as: UTF8.self)
    }.filter { !$0.isEmpty }
  }

  /// A real guest (QEMU TCG, 1 GiB): `kscope vm snapshot --resume` is SIGKILLed while it copies
  /// the RAM file. `kscope vm resume` brings the parent back to running, a second `kscope vm
  /// snapshot` works and removes the killed one's partial directory. Then a clone of that
  /// snapshot, whose manifest was given a planted QEMU argument, runs without it.
  @Test func killedSnapshotResumeThenSnapshotAgainAndCloneIgnoresStoredArgv() throws {
    let e2e = VMEndToEndTests()
    let binary = try kscopeBinary()
    try e2e.withManager("killsnap") { m in
      var o = e2e.options("6.1", .web)
      o.memory = 1 << 30
      try m.start(name: "parent", options: o)
      let state = ["--state-dir", m.stateDir]
      let snap = m.stateDir + "/snap"
      let child = try ChildProcess.spawn(
        [binary, "vm", "snapshot", "parent", "-o", snap, "--resume", "--no-color"] + state,
        .init(output: m.stateDir + "/snapshot.log", errorsToo: true, noInput: true))
      let partial = m.stateDir + "/.snap.partial-\(child)"
      // Killed as soon as the RAM copy has written something, long before its 1 GiB is done.
      var st = stat()
      let deadline = Date(timeIntervalSinceNow: 120)
      var killedMidCopy = false
      while Date() < deadline {
        if stat(partial + "/ram", &st) == 0 && st.st_blocks > 0 {
          kill(child, SIGKILL)
          killedMidCopy = true
          break
        }
        if !Self.running(child) { break }
        usleep(500)
      }
      if !killedMidCopy { kill(child, SIGKILL) }
      Self.reap(child)
      #expect(killedMidCopy, "the snapshot never reached its RAM copy (see \(m.stateDir)/snapshot.log)")
      #expect(!FileManager.default.fileExists(atPath: snap + "/manifest.json"))
      #expect(FileManager.default.fileExists(atPath: partial), "the kill left no partial directory")
      // The parent is stopped (its device state saved): not running until resumed.
      #expect(try m.status("parent").state != "running")

      let resumed = try runKscope(["vm", "resume", "parent"] + state, timeout: 120)
      #expect(resumed.status == 0, "vm resume: \(resumed.stderr)")
      #expect(try m.status("parent").state == "running")
      #expect(try m.exec(name: "parent", command: "echo alive").text.contains("alive"))

      let again = try runKscope(
        ["vm", "snapshot", "parent", "-o", snap, "--resume", "--no-color"] + state, timeout: 300)
      #expect(again.status == 0, "second vm snapshot: \(again.stderr)")
      #expect(FileManager.default.fileExists(atPath: snap + "/manifest.json"))
      #expect(!FileManager.default.fileExists(atPath: partial))
      #expect(try m.status("parent").state == "running")

      // The stored argv is a record of how the parent ran; a clone's QEMU command line comes
      // from kscope's own profile and the validated fields. Plant arguments that QEMU would
      // honour (and one harmful one) and check the clone's real command line.
      var manifest = try SnapshotManifest.decode(
        Data(try Files.read(snap + "/manifest.json", limit: 1 << 20)))
      let planted = "kscope-planted-\(getpid())"
      manifest.qemuCommandLine += [
        "-name", planted, "-smp", "3", "-object", "memory-backend-file,id=x,mem-path=/etc/\(planted)",
        "-incoming", "exec:touch /tmp/\(planted)",
      ]
      try Files.writeAtomically(Array(try manifest.encoded()), to: snap + "/manifest.json")
      let cloned = try runKscope(["vm", "clone", snap, "--name", "clone"] + state, timeout: 300)
      #expect(cloned.status == 0, "vm clone: \(cloned.stderr)")
      let pid = try #require(try m.status("clone").pid)
      let argv = try Self.commandLine(pid)
      #expect(argv.first?.hasSuffix("qemu-system-x86_64") == true)
      #expect(!argv.contains { $0.contains(planted) }, "planted argument in \(argv)")
      #expect(!argv.contains("3"), "the planted -smp 3 reached QEMU: \(argv)")
      #expect(!FileManager.default.fileExists(atPath: "/tmp/\(planted)"))
      #expect(try m.status("clone").state == "running")
    }
  }

  /// `kscope vm image` of an OLAP image SIGKILLed while sqlite3 generates the database: sqlite3
  /// dies with it (PR_SET_PDEATHSIG), and the next image build removes the half-built image
  /// from the state directory in /dev/shm.
  @Test func killedImageBuildLeavesNoChildAndTheNextBuildCleansUp() throws {
    let binary = try kscopeBinary()
    let dir = "/dev/shm/kscope-test-killimage-\(getpid())"
    try? FileManager.default.removeItem(atPath: dir)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let image = ["vm", "image", "--kernel", "6.1", "--workload", "olap", "--no-agent", "--state-dir", dir]
    // 2 GiB of database: sqlite3 runs for minutes, long enough to be caught.
    let child = try ChildProcess.spawn(
      [binary] + image + ["--olap-size", "2048"],
      .init(output: dir + ".log", errorsToo: true, noInput: true))
    defer { unlink(dir + ".log") }
    var sqlite: pid_t? = nil
    let deadline = Date(timeIntervalSinceNow: 300)
    while Date() < deadline, sqlite == nil, Self.running(child) {
      sqlite = Self.children(of: child).first { $0.name == "sqlite3" }?.pid
      usleep(20_000)
    }
    kill(child, SIGKILL)
    Self.reap(child)
    let log = (try? String(contentsOfFile: dir + ".log", encoding: .utf8)) ?? ""
    let pid = try #require(sqlite, "no sqlite3 child seen; the build said: \(log)")
    // PR_SET_PDEATHSIG sends SIGKILL at once; give the kernel a moment to deliver it.
    var gone = false
    for _ in 0..<100 where !gone {
      gone = !Self.running(pid)
      if !gone { usleep(20_000) }
    }
    #expect(gone, "sqlite3 (pid \(pid)) still runs after kscope was killed")
    if !gone { kill(pid, SIGKILL) }
    // The killed build's temporary directory is still there (SIGKILL runs no cleanup) ...
    let images = dir + "/images"
    let stale = try FileManager.default.contentsOfDirectory(atPath: images).filter { $0.hasPrefix(".tmp-") }
    #expect(stale.count == 1 && stale.first?.hasSuffix("-\(child)") == true, "in \(images): \(stale)")
    // ... until the next build, which removes it and leaves only finished images.
    let next = try runKscope(image + ["--olap-size", "8"], timeout: 600)
    #expect(next.status == 0, "next image build: \(next.stderr)")
    let left = try FileManager.default.contentsOfDirectory(atPath: images)
    #expect(!left.contains { $0.hasPrefix(".tmp-") }, "left in \(images): \(left)")
  }
}
