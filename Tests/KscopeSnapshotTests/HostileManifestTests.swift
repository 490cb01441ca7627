import Foundation
import KscopeCore
import KscopeOS
import KscopeTestSupport
import Testing

@testable import KscopeSnapshot

#if canImport(Glibc)
  import Glibc
#endif

/// Snapshots come from other hosts and guests: every manifest field is bounded, no name reaches
/// a shell or leaves the directory, and no number can make kscope trap (issue 10).
@Suite struct HostileManifestTests {
  static func good() -> SnapshotManifest { SampleSnapshot.manifest() }

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
    big.memoryLayout = GuestRAMRegion.q35Layout(ramSize: 4 << 30)
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
    let cases: [([GuestRAMRegion], String)] = [
      // file_offset 2^64-1 with size 1: the old check wrapped around.
      ([GuestRAMRegion(guestPhysicalStart: 0, size: 1, fileOffset: UInt64.max)], "page-aligned"),
      (
        [GuestRAMRegion(guestPhysicalStart: 0, size: 4096, fileOffset: UInt64.max - 4095)],
        "outside"
      ),
      // Sizes that sum past 2^64 (and each fits the RAM file only by wrapping).
      (
        [
          GuestRAMRegion(guestPhysicalStart: 0, size: ram, fileOffset: 0),
          GuestRAMRegion(guestPhysicalStart: 1 << 40, size: UInt64.max - ram + 1, fileOffset: 0),
        ], "physical address"
      ),
      // guest_physical_start 2^64-4096: start + size wraps to 0.
      (
        [GuestRAMRegion(guestPhysicalStart: UInt64.max - 4095, size: ram, fileOffset: 0)],
        "physical address"
      ),
      // Overlapping and unsorted regions.
      (
        [
          GuestRAMRegion(guestPhysicalStart: 0, size: ram / 2, fileOffset: 0),
          GuestRAMRegion(guestPhysicalStart: 4096, size: ram / 2, fileOffset: ram / 2),
        ], "overlaps"
      ),
      (
        [
          GuestRAMRegion(guestPhysicalStart: 1 << 32, size: ram / 2, fileOffset: ram / 2),
          GuestRAMRegion(guestPhysicalStart: 0, size: ram / 2, fileOffset: 0),
        ], "sorted"
      ),
      (
        [
          GuestRAMRegion(guestPhysicalStart: 0, size: ram / 2, fileOffset: 0),
          GuestRAMRegion(guestPhysicalStart: 1 << 32, size: ram / 2, fileOffset: 0),
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
    // Nine regions of 64 MiB (128 MiB apart): one more than any q35 guest has.
    m.memoryLayout = (0..<8).map {
      GuestRAMRegion(guestPhysicalStart: UInt64($0) * (128 << 20), size: 64 << 20, fileOffset: UInt64($0) * (64 << 20))
    }
    _ = try SnapshotManifest.decode(try m.encoded())
    m.memoryLayout[7].size = 32 << 20
    m.memoryLayout.append(GuestRAMRegion(guestPhysicalStart: 9 * (128 << 20), size: 32 << 20, fileOffset: 480 << 20))
    try refused(m, "9 regions")
    m = Self.good()
    m.memoryLayout = [GuestRAMRegion(guestPhysicalStart: 1 << 52, size: 512 << 20, fileOffset: 0)]
    try refused(m, "52-bit")
  }

  /// RAM far above its size: a reader sizes its frame map by the end of RAM, so a region at
  /// 2^50 would ask for a 2^38-entry map. At most 4 GiB of holes are accepted.
  @Test func regionsFarAboveTheRAMAreRefused() throws {
    var m = Self.good()
    m.memoryLayout = [GuestRAMRegion(guestPhysicalStart: 1 << 50, size: 512 << 20, fileOffset: 0)]
    try refused(m, "more than 4 GiB of holes")
    m.memoryLayout = [
      GuestRAMRegion(guestPhysicalStart: 0, size: 256 << 20, fileOffset: 0),
      GuestRAMRegion(guestPhysicalStart: (1 << 50) - (256 << 20), size: 256 << 20, fileOffset: 256 << 20),
    ]
    try refused(m, "more than 4 GiB of holes")
    // q35's own split of a large guest (a 2 GiB hole) passes.
    m.ramSize = 8 << 30
    m.memoryLayout = GuestRAMRegion.q35Layout(ramSize: 8 << 30)
    _ = try SnapshotManifest.decode(try m.encoded())
  }

  /// Every file the manifest names (RAM, hints, device state) is a plain name inside the
  /// directory: absolute paths and ".." are refused for each, with one line naming the rule.
  @Test func noFileFieldLeavesTheDirectory() throws {
    for name in ["/etc/shadow", "../other/ram", "..", "./ram", "a/../../ram"] {
      for field in [\SnapshotManifest.ram, \SnapshotManifest.hints, \SnapshotManifest.deviceState] {
        var m = Self.good()
        m[keyPath: field] = name
        try refused(m, "not a plain file name")
      }
    }
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
    m.memoryLayout = [GuestRAMRegion(guestPhysicalStart: 0, size: 65 << 30, fileOffset: 0)]
    try refused(m, "ram_size")
    m.ramSize = (512 << 20) + 4096
    m.memoryLayout = [GuestRAMRegion(guestPhysicalStart: 0, size: m.ramSize, fileOffset: 0)]
    try refused(m, "ram_size")
    // 64 GiB passes the format but not a host with less memory.
    m = Self.good()
    m.ramSize = 64 << 30
    m.memoryLayout = GuestRAMRegion.q35Layout(ramSize: 64 << 30)
    _ = try SnapshotManifest.decode(try m.encoded())
    #expect(throws: SnapshotError.self) {
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
  }
}

/// A snapshot directory on disk: files are opened inside it, never through a link.
@Suite struct SnapshotDirectoryTests {
  func makeSnapshot() throws -> String { try SampleSnapshot.makeDirectory() }

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

  @Test func aHintsLinkOutOfTheDirectoryIsRefused() throws {
    let dir = try makeSnapshot()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.removeItem(atPath: dir + "/hints")
    try FileManager.default.createSymbolicLink(atPath: dir + "/hints", withDestinationPath: "/etc/passwd")
    do {
      _ = try Snapshot.open(dir)
      Issue.record("a hints link to /etc/passwd was followed")
    } catch {
      #expect("\(error)".contains("symbolic link") && !"\(error)".contains("\n"), "\(error)")
    }
  }

  /// The RAM is mapped with the manifest's regions, and reads outside them are nil.
  @Test func theRAMIsMappedWithTheManifestsRegions() throws {
    let dir = try makeSnapshot()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let ram = try Snapshot.open(dir).mapRAM()
    #expect(ram.regions == SampleSnapshot.manifest().memoryLayout)
    #expect(ram.end == 512 << 20)
    #expect(ram.u64(at: GuestPhysicalAddress(0)) == 0)
    #expect(ram.u64(at: GuestPhysicalAddress((512 << 20) - 4)) == nil)
    // All zeros: both block digests hash no block.
    #expect(
      try ram.contentDigest(algorithm: .xxh64NonZeroBlocks)
        == .xxh64(XXH64().finish(), size: 512 << 20, algorithm: .xxh64NonZeroBlocks))
    let tree = try ram.contentDigest()
    #expect(tree.algorithm == .xxh3BlockTree && tree.size == 512 << 20)
  }

  @Test func specialFilesAndWrongSizesAreRefused() throws {
    let dir = try makeSnapshot()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.removeItem(atPath: dir + "/device.state")
    #expect(mkfifo(dir + "/device.state", 0o600) == 0)
    #expect { try Snapshot.open(dir) } throws: { "\($0)".contains("FIFO") }
    try FileManager.default.removeItem(atPath: dir + "/device.state")
    try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/device.state"))
    try SampleSnapshot.createSparseFile(dir + "/hints", size: 8 << 20)
    #expect { try Snapshot.open(dir) } throws: { "\($0)".contains("manifest says") }
  }

  @Test func aSnapshotLargerThanTheHostIsRefused() throws {
    let dir = try makeSnapshot()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let s = try Snapshot.open(dir)
    try s.checkFitsHost(memory: 1 << 30)
    #expect(throws: SnapshotError.self) { try s.checkFitsHost(memory: 256 << 20) }
  }

}
