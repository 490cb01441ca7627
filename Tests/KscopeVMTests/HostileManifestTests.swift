import Foundation
import KscopeOS
import Testing

@testable import KscopeVM

#if canImport(Glibc)
  import Glibc
#endif

/// Snapshots come from other hosts and guests: every manifest field is bounded, no name reaches
/// a shell or leaves the directory, and no number can make kscope trap (issue 10).
@Suite struct HostileManifestTests {
  static func good() -> SnapshotManifest { ManifestTests.manifest() }

  func refused(
    _ m: SnapshotManifest, _ words: String, sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let data = try m.encoded()
    do {
      _ = try SnapshotManifest.decode(data)
      Issue.record("accepted a hostile manifest (\(words))", sourceLocation: sourceLocation)
    } catch {
      let text = "\(error)"
      #expect(text.contains(words), "\(text)", sourceLocation: sourceLocation)
      #expect(!text.contains("\n"), sourceLocation: sourceLocation)
    }
  }

  @Test func theGoodManifestPasses() throws {
    #expect(try SnapshotManifest.decode(try Self.good().encoded()) == Self.good())
    var big = Self.good()
    big.ramSize = 4 << 30
    big.memoryLayout = GuestMemoryRegion.q35Layout(ramSize: 4 << 30)
    #expect(try SnapshotManifest.decode(try big.encoded()) == big)
  }

  @Test func fileNamesCannotReachAShellOrLeaveTheDirectory() throws {
    for name in [
      "ds';touch /tmp/PWNED;'", "sub/ram", "../ram", ".hidden", "a b", "x$(id)", "", "/etc/passwd",
      "ram\n",
    ] {
      var m = Self.good()
      m.deviceState = name
      try refused(m, "plain file name")
    }
    var twice = Self.good()
    twice.hints = "ram"
    try refused(twice, "same file twice")
  }

  @Test func memoryLayoutArithmeticIsChecked() throws {
    let ram: UInt64 = 512 << 20
    let cases: [([GuestMemoryRegion], String)] = [
      // file_offset 2^64-1 with size 1: the old check wrapped around.
      ([GuestMemoryRegion(guestPhysicalStart: 0, size: 1, fileOffset: UInt64.max)], "page-aligned"),
      (
        [GuestMemoryRegion(guestPhysicalStart: 0, size: 4096, fileOffset: UInt64.max - 4095)],
        "outside"
      ),
      // Sizes that sum past 2^64 (and each fits the RAM file only by wrapping).
      (
        [
          GuestMemoryRegion(guestPhysicalStart: 0, size: ram, fileOffset: 0),
          GuestMemoryRegion(guestPhysicalStart: 1 << 40, size: UInt64.max - ram + 1, fileOffset: 0),
        ], "physical address"
      ),
      // guest_physical_start 2^64-4096: start + size wraps to 0.
      (
        [GuestMemoryRegion(guestPhysicalStart: UInt64.max - 4095, size: ram, fileOffset: 0)],
        "physical address"
      ),
      // Overlapping and unsorted regions.
      (
        [
          GuestMemoryRegion(guestPhysicalStart: 0, size: ram / 2, fileOffset: 0),
          GuestMemoryRegion(guestPhysicalStart: 4096, size: ram / 2, fileOffset: ram / 2),
        ], "overlaps"
      ),
      (
        [
          GuestMemoryRegion(guestPhysicalStart: 1 << 32, size: ram / 2, fileOffset: ram / 2),
          GuestMemoryRegion(guestPhysicalStart: 0, size: ram / 2, fileOffset: 0),
        ], "sorted"
      ),
      (
        [
          GuestMemoryRegion(guestPhysicalStart: 0, size: ram / 2, fileOffset: 0),
          GuestMemoryRegion(guestPhysicalStart: 1 << 32, size: ram / 2, fileOffset: 0),
        ], "share bytes"
      ),
      ([], "regions"),
    ]
    for (layout, words) in cases {
      var m = Self.good()
      m.memoryLayout = layout
      try refused(m, words)
    }
  }

  @Test func layoutsHaveFewRegionsBelowTheArchitecturesLimit() throws {
    var m = Self.good()
    // Nine regions of 64 MiB: one more than any q35 guest has.
    m.memoryLayout = (0..<8).map {
      GuestMemoryRegion(guestPhysicalStart: UInt64($0) << 32, size: 64 << 20, fileOffset: UInt64($0) * (64 << 20))
    }
    _ = try SnapshotManifest.decode(try m.encoded())
    m.memoryLayout[7].size = 32 << 20
    m.memoryLayout.append(GuestMemoryRegion(guestPhysicalStart: 9 << 32, size: 32 << 20, fileOffset: 480 << 20))
    try refused(m, "9 regions")
    m = Self.good()
    m.memoryLayout = [GuestMemoryRegion(guestPhysicalStart: 1 << 52, size: 512 << 20, fileOffset: 0)]
    try refused(m, "52-bit")
  }

  @Test func sizesAndCountsAreBounded() throws {
    var m = Self.good()
    for cpus in [-1, 0, 9, 1000] {
      m = Self.good()
      m.cpus = cpus
      try refused(m, "cpus")
    }
    m = Self.good()
    m.hintSize = 0
    try refused(m, "hint_size")
    m.hintSize = 1 << 40
    try refused(m, "hint_size")
    m = Self.good()
    m.ramSize = 65 << 30
    m.memoryLayout = [GuestMemoryRegion(guestPhysicalStart: 0, size: 65 << 30, fileOffset: 0)]
    try refused(m, "ram_size")
    m.ramSize = (512 << 20) + 4096
    m.memoryLayout = [GuestMemoryRegion(guestPhysicalStart: 0, size: m.ramSize, fileOffset: 0)]
    try refused(m, "ram_size")
    // 64 GiB passes the format but not a host with less memory.
    m = Self.good()
    m.ramSize = 64 << 30
    m.memoryLayout = GuestMemoryRegion.q35Layout(ramSize: 64 << 30)
    _ = try SnapshotManifest.decode(try m.encoded())
    #expect(throws: VMError.self) {
      try SnapshotManifest.decode(Data(count: SnapshotManifest.maxManifestBytes + 1))
    }
  }

  @Test func buildIDsAreHexadecimal() throws {
    for id in [
      "../../../../tmp/x", "ABCDEF12", "abc", "", "12345678/", String(repeating: "a", count: 130),
    ] {
      var m = Self.good()
      m.kernel.buildID = id
      try refused(m, "build_id")
    }
    #expect(throws: VMError.self) { try GuestKernel.find(buildID: "../../../../tmp/x") }
  }

  @Test func aBuildIDOfNoCachedKernelIsRefused() throws {
    do {
      _ = try GuestKernel.find(
        buildID: String(repeating: "0", count: 40), release: "6.1.0-56-cloud-amd64")
      Issue.record("a build id of no kernel was accepted")
    } catch {
      #expect("\(error)".contains("no cached kernel has build id"))
    }
  }

  @Test func imagesAreFoundByKeyNeverByPath() throws {
    #expect(throws: VMError.self) { try GuestImage.cached(key: "../../etc", stateDir: "/tmp") }
    #expect(throws: VMError.self) {
      try GuestImage.cached(key: "0123456789abcdef", stateDir: "/nonexistent")
    }
  }
}

/// A snapshot directory on disk: files are opened inside it, never through a link.
@Suite struct SnapshotDirectoryTests {
  func makeSnapshot() throws -> String {
    let dir =
      NSTemporaryDirectory() + "kscope-hostile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try ManifestTests.manifest().encoded().write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    try createSparseFile(dir + "/ram", size: 512 << 20)
    try createSparseFile(dir + "/hints", size: 4 << 20)
    try Data("QEVM".utf8).write(to: URL(fileURLWithPath: dir + "/device.state"))
    return dir
  }

  @Test func aValidSnapshotOpens() throws {
    let dir = try makeSnapshot()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let s = try Snapshot.open(dir)
    #expect(s.ram.size == 512 << 20)
    #expect(try s.deviceState.readAll(limit: 100) == Array("QEVM".utf8))
  }

  @Test func aSymlinkedManifestIsRefused() throws {
    let dir = try makeSnapshot()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.moveItem(atPath: dir + "/manifest.json", toPath: dir + "/real.json")
    try FileManager.default.createSymbolicLink(
      atPath: dir + "/manifest.json", withDestinationPath: dir + "/real.json")
    #expect { try Snapshot.open(dir) } throws: { "\($0)".contains("symbolic link") }
  }

  @Test func aSymlinkedRAMFileIsRefused() throws {
    let dir = try makeSnapshot()
    let other = try makeSnapshot()
    defer {
      try? FileManager.default.removeItem(atPath: dir)
      try? FileManager.default.removeItem(atPath: other)
    }
    // "Someone else's RAM": a link out of the directory.
    try FileManager.default.removeItem(atPath: dir + "/ram")
    try FileManager.default.createSymbolicLink(
      atPath: dir + "/ram", withDestinationPath: other + "/ram")
    #expect { try Snapshot.open(dir) } throws: { "\($0)".contains("symbolic link") }
  }

  @Test func specialFilesAndWrongSizesAreRefused() throws {
    let dir = try makeSnapshot()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.removeItem(atPath: dir + "/device.state")
    #expect(mkfifo(dir + "/device.state", 0o600) == 0)
    #expect { try Snapshot.open(dir) } throws: { "\($0)".contains("FIFO") }
    try FileManager.default.removeItem(atPath: dir + "/device.state")
    try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/device.state"))
    try createSparseFile(dir + "/hints", size: 8 << 20)
    #expect { try Snapshot.open(dir) } throws: { "\($0)".contains("manifest says") }
  }

  @Test func aSnapshotLargerThanTheHostIsRefused() throws {
    let dir = try makeSnapshot()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let s = try Snapshot.open(dir)
    try s.checkFitsHost(memory: 1 << 30)
    #expect(throws: VMError.self) { try s.checkFitsHost(memory: 256 << 20) }
  }

  @Test func aCloneOfAnInjectingManifestRunsNothing() throws {
    let dir = try makeSnapshot()
    let marker = NSTemporaryDirectory() + "kscope-pwned-\(getpid())"
    defer {
      try? FileManager.default.removeItem(atPath: dir)
      unlink(marker)
    }
    var m = ManifestTests.manifest()
    m.deviceState = "ds';touch \(marker);'"
    try m.encoded().write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    let state = NSTemporaryDirectory() + "kscope-pwned-state-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: state) }
    #expect { try VMManager(stateDir: state).clone(snapshot: dir, name: "x") } throws: {
      "\($0)".contains("plain file name")
    }
    #expect(!FileManager.default.fileExists(atPath: marker))
    #expect(!FileManager.default.fileExists(atPath: state + "/vms/x"))
  }
}

/// The device state reaches QEMU as a descriptor (QMP getfd, SCM_RIGHTS), not as a path in a
/// shell command: a fake QMP server receives the descriptor and reads the file through it.
@Suite struct DescriptorPassingTests {
  /// recvmsg of one line with an SCM_RIGHTS descriptor.
  static func receiveWithDescriptor(_ fd: Int32) -> (String, Int32?) {
    var buf = [UInt8](repeating: 0, count: 4096)
    var control = [UInt8](repeating: 0, count: 64)
    let n: Int = buf.withUnsafeMutableBytes { b in
      control.withUnsafeMutableBytes { c in
        var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
        return withUnsafeMutablePointer(to: &iov) { iovp in
          var msg = msghdr()
          msg.msg_iov = iovp
          msg.msg_iovlen = 1
          msg.msg_control = c.baseAddress
          msg.msg_controllen = c.count
          return recvmsg(fd, &msg, 0)
        }
      }
    }
    guard n > 0 else { return ("", nil) }
    let line = String(decoding: buf[0..<n], as: UTF8.self)
    let level = control.withUnsafeBytes { $0.load(fromByteOffset: 8, as: Int32.self) }
    let type = control.withUnsafeBytes { $0.load(fromByteOffset: 12, as: Int32.self) }
    guard level == SOL_SOCKET, type == SCM_RIGHTS else { return (line, nil) }
    return (line, control.withUnsafeBytes { $0.load(fromByteOffset: 16, as: Int32.self) })
  }

  @Test func getfdPassesTheOpenFile() throws {
    let sock = NSTemporaryDirectory() + "kscope-qmp-fd-\(getpid()).sock"
    let file = NSTemporaryDirectory() + "kscope-qmp-fd-\(getpid()).state"
    try Data("device state bytes".utf8).write(to: URL(fileURLWithPath: file))
    defer { unlink(file) }
    let server = try FakeUnixServer(path: sock)
    defer { server.close() }
    final class Box: @unchecked Sendable {
      var line = ""
      var content = ""
    }
    let got = Box()
    let t = Thread {
      guard let c = server.accept() else { return }
      c.send(#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}}}"# + "\n")
      _ = c.receiveLine()
      c.send(#"{"return": {}, "id": 1}"# + "\n")
      let (line, fd) = Self.receiveWithDescriptor(c.fd)
      got.line = line
      if let fd {
        var b = [UInt8](repeating: 0, count: 64)
        let n = pread(fd, &b, 64, 0)
        got.content = String(decoding: b[0..<max(n, 0)], as: UTF8.self)
        Glibc.close(fd)
      }
      c.send(#"{"return": {}, "id": 2}"# + "\n")
      c.close()
    }
    t.start()
    let q = try QMPClient(path: sock, timeout: 5)
    let fd = open(file, O_RDONLY)
    defer { close(fd) }
    try q.passFile(fd, name: "kscope-state")
    q.close()
    #expect(got.line.contains(#""execute":"getfd""#))
    #expect(got.line.contains("kscope-state"))
    #expect(got.content == "device state bytes")
  }
}
