import Foundation
import KscopeCore
import Testing

@testable import KscopeVM

@Suite struct LayoutAndCommandLineTests {
  @Test func q35LayoutBelowThePCIHoleIsOneRegion() {
    #expect(
      GuestMemoryRegion.q35Layout(ramSize: 512 << 20)
        == [GuestMemoryRegion(guestPhysicalStart: 0, size: 512 << 20, fileOffset: 0)])
    let justBelow: UInt64 = 0xb000_0000 - (1 << 20)
    #expect(GuestMemoryRegion.q35Layout(ramSize: justBelow).count == 1)
  }

  @Test func q35LayoutSplitsAt2GiBOnce2Point75GiBIsReached() {
    for ram: UInt64 in [0xb000_0000, 3 << 30, 8 << 30] {
      let l = GuestMemoryRegion.q35Layout(ramSize: ram)
      #expect(l.count == 2)
      #expect(l[0] == GuestMemoryRegion(guestPhysicalStart: 0, size: 2 << 30, fileOffset: 0))
      #expect(
        l[1]
          == GuestMemoryRegion(
            guestPhysicalStart: 4 << 30, size: ram - (2 << 30), fileOffset: 2 << 30))
      #expect(l.reduce(0) { $0 + $1.size } == ram)
    }
  }

  @Test func memorySizes() throws {
    #expect(try parseMemorySize("512M") == 512 << 20)
    #expect(try parseMemorySize("1g") == 1 << 30)
    #expect(try parseMemorySize("768") == 768 << 20)
    for bad in ["", "M", "12X", "-5M", "64M", "65G", "1.5G"] {
      #expect(throws: VMError.self) { try parseMemorySize(bad) }
    }
  }

  static func config(hintsShared: Bool = true) -> VMConfig {
    let k = GuestKernel(
      series: "6.1", release: "6.1.0-56-cloud-amd64", version: "#1 SMP", buildID: "ab",
      directory: "/k")
    let img = GuestImage(
      key: "0123", directory: "/s/images/0123", kernel: k, workload: .web, olapMiB: 200,
      hasAgent: false)
    return VMConfig(
      name: "p", directory: "/s/vms/p", memoryBytes: 512 << 20, cpus: 1, kernel: k, image: img,
      hostPort: 40123, hintsShared: hintsShared)
  }

  func value(after flag: String, in argv: [String], containing: String) -> String? {
    argv.indices.filter { argv[$0] == flag && $0 + 1 < argv.count }.map { argv[$0 + 1] }
      .first { containing.isEmpty || $0.contains(containing) }
  }

  @Test func parentCommandLine() {
    let a = Self.config().qemuArguments()
    #expect(a.first == "qemu-system-x86_64")
    #expect(value(after: "-accel", in: a, containing: "") == "tcg")
    #expect(value(after: "-machine", in: a, containing: "q35") == "q35,memory-backend=ram")
    #expect(
      value(after: "-object", in: a, containing: "id=ram")
        == "memory-backend-file,id=ram,size=512M,mem-path=/s/vms/p/ram,share=on")
    #expect(
      value(after: "-object", in: a, containing: "id=hints")
        == "memory-backend-file,id=hints,size=4M,mem-path=/s/vms/p/hints,share=on")
    #expect(
      value(after: "-device", in: a, containing: "ivshmem")
        == "ivshmem-plain,memdev=hints,master=on")
    #expect(value(after: "-device", in: a, containing: "vmcoreinfo") == "vmcoreinfo")
    #expect(value(after: "-global", in: a, containing: "vapic") == "apic-common.vapic=off")
    #expect(
      value(after: "-qmp", in: a, containing: "") == "unix:/s/vms/p/qmp.sock,server=on,wait=off")
    #expect(value(after: "-serial", in: a, containing: "file:") == "file:/s/vms/p/console.log")
    // The shared data disk: each VM writes only to its own temporary overlay.
    #expect(value(after: "-drive", in: a, containing: "data.ext4")?.hasSuffix(",snapshot=on") == true)
    #expect(value(after: "-device", in: a, containing: "vmgenid") == "vmgenid,guid=auto")
    #expect(value(after: "-device", in: a, containing: "virtio-net") == "virtio-net-pci,netdev=net0,mac=52:54:00:6b:73:01")
    // Loopback only: the one host forward is bound to 127.0.0.1, and the guest is restricted.
    let net = value(after: "-netdev", in: a, containing: "user") ?? ""
    #expect(net.contains("restrict=on"))
    #expect(net.contains("hostfwd=tcp:127.0.0.1:40123-:80"))
    #expect(value(after: "-pidfile", in: a, containing: "") == "/s/vms/p/qemu.pid")
    #expect(!a.contains("-incoming"))
  }

  @Test func cloneCommandLineWaitsForIncomingAndMapsHintsPrivately() {
    let a = Self.config(hintsShared: false).qemuArguments(incoming: true)
    #expect(Array(a.suffix(2)) == ["-incoming", "defer"])
    #expect(value(after: "-object", in: a, containing: "id=hints")?.hasSuffix("share=off") == true)
    #expect(value(after: "-object", in: a, containing: "id=ram")?.hasSuffix("share=on") == true)
  }

  @Test func templateAndLazyClonesMapTheirRAMFilePrivately() {
    var c = Self.config(hintsShared: false)
    c.ramBacking = RAMBacking(mode: "lazy", file: "/dev/shm/e,x/cache.ram")
    c.mac = VMConfig.cloneMAC(name: "c1", directory: "/s/vms/c1")
    let a = c.qemuArguments(incoming: true)
    // A comma in the path is doubled: it cannot start an option of its own.
    #expect(
      value(after: "-object", in: a, containing: "id=ram")
        == "memory-backend-file,id=ram,size=512M,mem-path=/dev/shm/e,,x/cache.ram,share=off")
    #expect(value(after: "-device", in: a, containing: "virtio-net")?.hasSuffix("mac=\(c.mac)") == true)
  }

  @Test func clonesGetDistinctLocallyAdministeredMACs() {
    let macs = (0..<64).map { VMConfig.cloneMAC(name: "c\($0)", directory: "/s/vms/c\($0)") }
    #expect(Set(macs).count == 64)
    #expect(macs.allSatisfy { $0.hasPrefix("52:54:01:") && $0.count == 17 })
    #expect(VMConfig.cloneMAC(name: "a", directory: "/d") == VMConfig.cloneMAC(name: "a", directory: "/d"))
  }

  @Test func theIdentityCommandSetsClockAndMAC() {
    let cmd = VMManager.identityCommand(mac: "52:54:01:aa:bb:cc", now: Date(timeIntervalSince1970: 1_800_000_000.4))
    #expect(cmd.hasPrefix("date -u -s @1800000000 "))
    #expect(cmd.contains("ip link set dev eth0 address 52:54:01:aa:bb:cc"))
    let seeded = VMManager.identityCommand(mac: "m", now: Date(), seed: [UInt8](repeating: 0xab, count: 32))
    #expect(seeded.hasSuffix("/usr/bin/kscope reseed " + String(repeating: "ab", count: 32) + "; }"))
    // A fresh seed each time.
    #expect(VMManager.randomSeed() != VMManager.randomSeed())
  }

  @Test func configRoundTripsThroughJSON() throws {
    let c = Self.config()
    let back = try JSONDecoder().decode(VMConfig.self, from: JSONEncoder().encode(c))
    #expect(back == c)
  }

  /// The snapshot model checks manifests without the VM layer: its lists and name rule must be
  /// the VM layer's.
  @Test func theManifestsRulesAreTheVMLayers() throws {
    #expect(SnapshotManifest.workloads == Workload.allCases.map(\.rawValue))
    #expect(SnapshotManifest.kernelSeries == GuestKernel.supportedSeries)
    for name in ["web-1_a", "p", "", "a/b", "..", "a b", String(repeating: "x", count: 40), String(repeating: "x", count: 41), "é", "x\n"] {
      #expect(SnapshotManifest.isVMName(name) == ((try? VMManager.validateName(name)) != nil), "\(name)")
    }
  }

  @Test func namesAreValidated() throws {
    try VMManager.validateName("web-1_a")
    for bad in ["", "a/b", "..", "a b", String(repeating: "x", count: 41), "é"] {
      #expect(throws: VMError.self) { try VMManager.validateName(bad) }
    }
  }
}

@Suite struct HelperTests {
  @Test func sha256KnownVectors() {
    #expect(
      SHA256.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(
      SHA256.hex(Data("abc".utf8))
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(
      SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
        == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    // Incremental updates in odd-sized pieces give the same digest as one update.
    let big = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    var h = SHA256()
    var i = 0
    while i < big.count {
      let n = min(777, big.count - i)
      h.update(big.subdata(in: i..<(i + n)))
      i += n
    }
    #expect(h.hexDigest() == SHA256.hex(big))
    // A copy continues on its own (value semantics over libcrypto's context).
    var a = SHA256()
    a.update("ab")
    var b = a
    b.update("c")
    a.update("x")
    #expect(b.hexDigest() == SHA256.hex(Data("abc".utf8)))
    #expect(a.hexDigest() == SHA256.hex(Data("abx".utf8)))
  }

  @Test func elfNotesFindTheBuildID() throws {
    // One note area: an unrelated "Linux" note, then the GNU build-id (type 3).
    func note(_ name: String, _ type: UInt32, _ desc: [UInt8]) -> [UInt8] {
      let n = Array(name.utf8) + [0]
      func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
      func pad(_ b: [UInt8]) -> [UInt8] { b + [UInt8](repeating: 0, count: (4 - b.count % 4) % 4) }
      return le32(UInt32(n.count)) + le32(UInt32(desc.count)) + le32(type) + pad(n) + pad(desc)
    }
    let area = note("Linux", 257, [1, 2, 3]) + note("GNU", 3, [0xde, 0xad, 0xbe, 0xef, 0x01])
    let notes = ELFNotes.parseNotes(area)
    #expect(notes.count == 2)
    #expect(
      notes[1] == ELFNotes.Note(name: "GNU", type: 3, descriptor: [0xde, 0xad, 0xbe, 0xef, 0x01]))
    // A truncated area yields what is complete, never a crash.
    #expect(ELFNotes.parseNotes(Array(area.prefix(30))).count == 1)
    #expect(throws: VMError.self) {
      try ELFNotes.sectionNotes(elfHeader: [UInt8](repeating: 0, count: 64), sectionTable: []) {
        _, _ in []
      }
    }
  }

  @Test func httpResponsesParse() throws {
    let r = try HTTPClient.parse(
      Data("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\r\n\r\n".utf8))
    #expect(r.status == 200)
    #expect(r.headers["content-type"] == "text/plain")
    #expect(r.body == Data("hello\r\n\r\n".utf8))
    #expect(throws: VMError.self) { try HTTPClient.parse(Data("HTTP/1.0 200 OK\r\n".utf8)) }
    #expect(throws: VMError.self) { try HTTPClient.parse(Data("garbage\r\n\r\n".utf8)) }
  }

  @Test func controlRepliesParse() throws {
    let req = GuestControl.request(id: "x1", command: "echo hi")
    #expect(req == Data("x1 \(Data("echo hi".utf8).base64EncodedString())\n".utf8))
    let payload = Data([0, 1, 2, 255, 10, 13])
    let reply = Data(
      "noise\n@@kscope-begin x1\n\(payload.base64EncodedString())\n@@kscope-end x1 3\n".utf8)
    let r = try GuestControl.parseReply(reply, id: "x1")
    #expect(r?.status == 3)
    #expect(r?.output == payload)
    #expect(try GuestControl.parseReply(reply.prefix(reply.count - 4), id: "x1") == nil)
    #expect(try GuestControl.parseReply(reply, id: "other") == nil)
    #expect(throws: VMError.self) {
      try GuestControl.parseReply(Data("@@kscope-begin a\n@@kscope-end a zz\n".utf8), id: "a")
    }
  }

  @Test func percentilesAreNearestRank() {
    let v = (1...100).map(Double.init)
    #expect(percentile(v, 50) == 50)
    #expect(percentile(v, 99) == 99)
    #expect(percentile([3, 1, 2], 50) == 2)
    #expect(percentile([], 50) == 0)
  }

  @Test func sitePlanIsDeterministicAndSized() {
    let a = SiteGenerator.plan()
    let b = SiteGenerator.plan()
    #expect(a.map(\.path) == b.map(\.path))
    #expect(a.count == 400)
    let total = a.reduce(0) { $0 + $1.size }
    #expect(total > 10 << 20 && total < 100 << 20)  // tens of MiB
    #expect(Set(a.map(\.path)).count == a.count)
    let big = SiteGenerator.plan(siteMiB: 240)
    #expect(big.count == 3200)
    #expect(big.reduce(0) { $0 + $1.size } >= 200 << 20)
  }

  @Test func zipfPopularityFavoursFewFiles() {
    let z = ZipfPicker(count: 1000)
    var rng = SplitMix64(seed: 3)
    var hits = [Int](repeating: 0, count: 1000)
    for _ in 0..<100_000 { hits[z.next(&rng)] += 1 }
    let sorted = hits.sorted(by: >)
    // Zipf(0.9) over 1000 items: the top 10 (1%) take about 31% of the requests (3.22 of the
    // weights' 10.5); every draw is a valid index.
    let top10 = sorted.prefix(10).reduce(0, +)
    #expect(top10 > 28_000 && top10 < 34_000, "top 10: \(top10)")
    #expect(hits.reduce(0, +) == 100_000)
    // Rank 1 is not file 0: popularity is permuted.
    #expect(hits.firstIndex(of: sorted[0]) != 0)
  }

  @Test func sparseCopyKeepsContentAndHoles() throws {
    let dir = NSTemporaryDirectory() + "kscope-sparse-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let src = dir + "/src"
    let dst = dir + "/dst"
    try createSparseFile(src, size: 64 << 20)
    let fh = FileHandle(forWritingAtPath: src)!
    let chunk = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 | 1) })
    for off: UInt64 in [0, 5 << 20, (64 << 20) - 8192] {
      try fh.seek(toOffset: off)
      fh.write(chunk)
    }
    try fh.seek(toOffset: 9 << 20)
    fh.write(Data(count: 1 << 20))  // allocated but zero: skipped too
    try fh.close()
    let written = try sparseCopy(from: src, to: dst)
    #expect(written >= 3 * 8192 && written <= 3 * 65536)
    #expect(FileManager.default.contents(atPath: dst) == FileManager.default.contents(atPath: src))
    #expect(allocatedBytes(dst) < 2 << 20)
  }
}
