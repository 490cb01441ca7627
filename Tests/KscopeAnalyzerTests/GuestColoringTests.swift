import Foundation
import KscopeCore
import KscopeSnapshot
import KscopeDebugInfo
import KscopeMaps
import KscopeLayout
import KscopeVM
import KscopeTestSupport
import Testing

@testable import KscopeAnalyzer

/// A real guest, paused and snapshotted right after it recorded its own /proc/kpageflags.
struct CapturedGuest {
  /// Holds the VM's image cache and the snapshot: the caller removes it (`discard`).
  var stateDir: String
  var kernel: String
  var workload: Workload
  var snapshot: String
  var manifest: SnapshotManifest
  var kpageflags: [UInt64]
  /// The guest's own /proc/iomem (read as root): its RAM and kernel image ranges.
  var iomem: ResourceMap
  var layout: KernelLayout

  func discard() { try? FileManager.default.removeItem(atPath: stateDir) }

  var memory: RAMImage {
    get throws {
      try RAMImage(
        path: snapshot + "/" + manifest.ram,
        regions: manifest.memoryLayout)
    }
  }
}

/// Boots `kernel` with `workload` (QEMU TCG, 512 MiB), warms it with its workload, then has
/// the guest record kpageflags and kpagecount into files it allocated beforehand (so recording
/// allocates nothing), announce it on the console, and idle in the same process; the host sees
/// the announcement in the console log and snapshots at once. The VM is stopped whatever
/// happens, and on failure its state directory is removed; on success the caller discards it.
func captureGuest(kernel: String, workload: Workload) throws -> CapturedGuest {
  let state = "/dev/shm/kscope-analyzer-test-\(getpid())-\(kernel)-\(workload.rawValue)"
  let vms = VMManager(stateDir: state)
  var ok = false
  defer {
    _ = vms.stopAll()
    if !ok { try? FileManager.default.removeItem(atPath: state) }
  }
  var options = StartOptions()
  options.kernelSeries = kernel
  options.workload = workload
  options.memory = 512 << 20
  try vms.start(name: "oracle", options: options)
  let record = try vms.record("oracle")
  switch workload {
  case .web: _ = try WorkloadDriver.web(port: record.config.hostPort, requests: 200)
  case .olap: _ = try WorkloadDriver.olap(port: record.config.hostPort, rounds: 1)
  }
  // Every process that exits (or buffer that is unmapped) between the recording and the pause
  // frees pages the kernel's flags still show in use, so the recording is done by a tiny
  // static program (guest-module/oracle/kpf-record.c) that allocates nothing, frees nothing and
  // stays alive; it announces the end on the console, where the host waits for it.
  let recorder = try buildRecorder()
  let frames = 512 << 8
  let marker = "KSCOPE-ORACLE-\(UInt32.random(in: 1...UInt32.max))"
  let upload = try vms.exec(
    name: "oracle",
    command: """
      echo \(recorder.base64EncodedString()) | base64 -d > /tmp/kpf-record && chmod +x /tmp/kpf-record
      dd if=/dev/zero of=/tmp/kpf bs=8 count=\(frames) 2>/dev/null
      (/tmp/kpf-record /tmp/kpf \(marker) </dev/null >/dev/null 2>&1 &)
      """)
  guard upload.status == 0 else { throw AnalyzerTestError("starting the recorder failed: \(upload.text)") }
  let deadline = Date(timeIntervalSinceNow: 120)
  while !((try? String(contentsOfFile: record.config.consolePath, encoding: .utf8))?.contains(marker) ?? false) {
    guard Date() < deadline else { throw AnalyzerTestError("the guest did not record kpageflags within 120 s") }
    usleep(20_000)
  }
  let snapshot = state + "/snapshot"
  let manifest = try vms.snapshot(name: "oracle", to: snapshot, resume: true)
  let dump = try vms.exec(name: "oracle", command: "cat /tmp/kpf", timeout: 300)
  guard dump.status == 0, dump.output.count >= 8 * frames else {
    throw AnalyzerTestError("reading kpageflags back from the guest failed (\(dump.status), \(dump.output.count) bytes)")
  }
  let flags = dump.output.withUnsafeBytes { b in
    (0..<(dump.output.count / 8)).map { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
  }
  // The resource map is fixed after boot, so reading it after the pause changes nothing.
  let iomemText = try vms.exec(name: "oracle", command: "cat /proc/iomem")
  let iomem = ResourceMap(text: iomemText.text)
  guard iomemText.status == 0, iomem.usable else { throw AnalyzerTestError("the guest's /proc/iomem is not readable: \(iomemText.text)") }
  let layout = try LayoutExtractor.extract(vmlinux: manifest.kernel.directory + "/vmlinux")
  ok = true
  return CapturedGuest(
    stateDir: state, kernel: kernel, workload: workload, snapshot: snapshot, manifest: manifest, kpageflags: flags,
    iomem: iomem, layout: layout)
}

/// Compiles the guest-side kpageflags recorder (no libc: a few KiB) with the host's gcc.
func buildRecorder() throws -> Data {
  let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("guest-module/oracle/kpf-record.c").path
  let output = NSTemporaryDirectory() + "kpf-record-\(getpid())"
  defer { try? FileManager.default.removeItem(atPath: output) }
  let gcc = Process()
  gcc.executableURL = URL(fileURLWithPath: "/usr/bin/gcc")
  gcc.arguments = [
    "-static", "-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns",
    "-fno-stack-protector", "-O2", "-s", "-o", output, source,
  ]
  do { try gcc.run() } catch { throw AnalyzerTestError("cannot run gcc (host/setup.sh installs it): \(error)") }
  gcc.waitUntilExit()
  guard gcc.terminationStatus == 0 else { throw AnalyzerTestError("gcc failed to build \(source)") }
  return try Data(contentsOf: URL(fileURLWithPath: output))
}

/// The analyzer against the kernel's own view, on real guests: 6.1 and 6.12, web and olap.
/// Needs QEMU and the cached kernels (host/setup.sh installs both); fails, never skips,
/// without them.
@Suite(.serialized) struct GuestColoringTests {
  @Test(arguments: GuestColoringTests.guests)
  func agreesWithKpageflags(kernel: String, workload: Workload) throws {
    let guest = try captureGuest(kernel: kernel, workload: workload)
    defer { guest.discard() }
    let analysis = try Analyzer.analyze(memory: try guest.memory, layout: guest.layout)
    #expect(analysis.map.header.kernelBuildID == guest.manifest.kernel.buildID)
    #expect(analysis.processes.count > 3)
    try expectImageMatchesIomem(guest, analysis)
    try expectLayoutMatchesVmcoreinfo(guest.layout, analysis.location.vmcoreinfo)
    let cmp = OracleComparison(
      entries: analysis.map.entries, flags: guest.kpageflags, kernelImage: guest.iomem.kernelImage(pageSize: 4096),
      ram: guest.iomem.ramFrames(pageSize: 4096))
    let name = "\(kernel) \(workload.rawValue)"
    print("\(name): compared \(cmp.comparedFrames) frames; anomalies \(analysis.anomalies)")
    for (k, row) in cmp.matrix.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
      print("  \(k.rawValue) -> " + row.sorted { $0.value > $1.value }.map { "\($0.key.name) \($0.value)" }.joined(separator: ", "))
    }
    print("  (no kernel class) -> " + cmp.unnamed.sorted { $0.value > $1.value }.map { "\($0.key.name) \($0.value)" }.joined(separator: ", "))
    try recordOracleRow(name, cmp)
    #expect(cmp.comparedFrames == 512 << 8)
    // The README's promise: 100.00% recall and precision on every class, every frame compared.
    for c in cmp.classes {
      #expect(c.frames > 0, "the guest has no \(c.oracleClass.rawValue) frames at all")
      #expect(c.agreeing == c.frames, "\(name): \(c.oracleClass.rawValue) recall: \(c.agreeing) of \(c.frames)")
      #expect(c.extra == 0, "\(name): \(c.oracleClass.rawValue) precision: \(c.extra) frames the kernel puts elsewhere")
    }
    // Frames whose flags are all clear are a free page on a per-CPU list or a flagless kernel
    // allocation to the kernel's flags; the reference count tells them apart, nothing else may.
    #expect(Set(cmp.unnamed.keys).isSubset(of: [.free, .kernelOther]), "\(name): \(cmp.unnamed)")
    // Page-cache frames carry their file identity.
    #expect(analysis.map.extents.count > 10)
    #expect(analysis.map.count(of: .userCode) > 0, "busybox text mapped executable")
    try expectReplayServesTheSnapshot(guest)
  }

  /// The clone engine on this real snapshot: two replay clones with the kaleidoscope policy
  /// touch every frame the map says is in use plus a sample of free ones (writing every 16th),
  /// and every page they touch must be the snapshot's (zeros for the free ones); the map comes
  /// from `kscope color`, so it carries the RAM digest the replay checks.
  func expectReplayServesTheSnapshot(_ guest: CapturedGuest) throws {
    let kscope = try kscopeBinary()
    let mapPath = guest.stateDir + "/replay.kcm"
    let tracePath = guest.stateDir + "/replay.trace"
    let color = try runProgram(kscope, ["color", guest.snapshot, "-o", mapPath])
    #expect(color.status == 0, "kscope color: \(color.stderr)")
    // The CLI's map (it merges the snapshot's hints, so a frame may differ from `map`).
    let map = try ColorMapFile.open(mapPath)
    var lines = ""
    var touched: Set<UInt64> = []
    for f in 0..<map.frameCount {
      let c = map.entry(at: f)?.color ?? .unknown
      guard (c != .free && c != .zero) || f % 97 == 0 else { continue }
      lines += "\(f) \(touched.count % 16 == 0 ? "w" : "r")\n"
      touched.insert(f)
    }
    try lines.write(toFile: tracePath, atomically: true, encoding: .utf8)
    let r = try runProgram(kscope, [
      "clone", "replay", "--snapshot", guest.snapshot, "--map", mapPath, "--trace", tracePath,
      "--policy", "kaleidoscope", "--clones", "2", "--json",
    ])
    #expect(r.status == 0, "kscope clone replay: \(r.stderr)")
    try expectSurvivesJQ(r.stdout, "clone replay")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    #expect(json["verified_pages"] as? Int == 2 * touched.count)
    // Free and zero frames are holes, never fetched.
    let holes = map.count(of: .free) + map.count(of: .zero)
    #expect(json["holes"] as? Int == Int(holes))
    #expect((json["pages_fetched"] as? Int ?? .max) <= Int(map.frameCount - holes))
  }

  static let guests: [(String, Workload)] = [("6.1", .web), ("6.1", .olap), ("6.12", .web), ("6.12", .olap)]

  /// With KSCOPE_ORACLE_TABLE=FILE, keeps the README's oracle table in FILE: this guest's row
  /// replaces its old one, rows in `guests` order.
  func recordOracleRow(_ guest: String, _ cmp: OracleComparison) throws {
    guard let path = ProcessInfo.processInfo.environment["KSCOPE_ORACLE_TABLE"], !path.isEmpty else { return }
    let table = OracleComparison.markdownTable([(guest, cmp)]).split(separator: "\n").map(String.init)
    var rows: [String: String] = [:]
    if let old = try? String(contentsOfFile: path, encoding: .utf8) {
      for line in old.split(separator: "\n") where line.hasPrefix("| 6.") {
        rows[String(line.dropFirst(2).prefix { $0 != "|" }.dropLast())] = String(line)
      }
    }
    rows[guest] = table[2]
    let ordered = GuestColoringTests.guests.map { "\($0.0) \($0.1.rawValue)" }.compactMap { rows[$0] }
    try (table[0...1] + ordered).map { $0 + "\n" }.joined().write(toFile: path, atomically: true, encoding: .utf8)
  }

  /// The running kernel's vmcoreinfo states sizes, offsets, PG_* bits and page_type values
  /// for crash tools: each one the layout also records must agree (6.1's page_type values are
  /// kscope's rule from macros, and this is the only check of them against the kernel).
  func expectLayoutMatchesVmcoreinfo(_ layout: KernelLayout, _ info: VMCoreInfo) throws {
    let pages = try PageStructLayout(layout: layout)
    var checked = 0
    func inside(_ key: String, _ prefix: String) -> String? {
      key.hasPrefix(prefix) && key.hasSuffix(")") ? String(key.dropFirst(prefix.count).dropLast()) : nil
    }
    let types: [String: PageType] = [
      "PAGE_BUDDY_MAPCOUNT_VALUE": .buddy, "PAGE_OFFLINE_MAPCOUNT_VALUE": .offline,
      "PAGE_HUGETLB_MAPCOUNT_VALUE": .hugetlb, "PAGE_SLAB_MAPCOUNT_VALUE": .slab,
      "PAGE_UNACCEPTED_MAPCOUNT_VALUE": .unaccepted,
    ]
    for (key, value) in info.values {
      if let type = inside(key, "SIZE("), let ours = layout.userTypes[type] {
        #expect(UInt64(ours.size) == UInt64(value), "\(key)=\(value)")
        checked += 1
      } else if let path = inside(key, "OFFSET("), case let parts = path.split(separator: "."), parts.count == 2,
        let member = layout.userTypes[String(parts[0])]?.member(named: String(parts[1]))
      {
        #expect(UInt64(member.offset) == UInt64(value), "\(key)=\(value)")
        checked += 1
      } else if let name = inside(key, "NUMBER("), name.hasPrefix("PG_"), !name.hasSuffix("_mask"),
        let ours = try? layout.enumValue("pageflags", name)
      {
        #expect(UInt64(bitPattern: ours) == info.number(name), "\(key)=\(value)")
        checked += 1
      } else if let name = inside(key, "NUMBER("), let type = types[name], let raw = info.number(name) {
        let defined: Bool
        switch pages.encoding {
        case .clearedBit(_, let bits): defined = bits[type] != nil
        case .topByte(let values): defined = values[type] != nil
        }
        guard defined else { continue }
        #expect(pages.encoding.has(type, pageType: UInt32(truncatingIfNeeded: raw)), "\(key)=\(value)")
        checked += 1
      }
    }
    #expect(checked >= 10, "only \(checked) vmcoreinfo facts compared")
    #expect(info.number("PAGE_BUDDY_MAPCOUNT_VALUE") != nil)
    print("layout vs vmcoreinfo: \(checked) facts compared")
  }

  /// The guest's own resource map names the kernel image exactly where the vmlinux's sections
  /// and symbols put it, at the physical address the analyzer located: so comparing kernel
  /// code and data against iomem checks the analyzer's image ranges independently.
  func expectImageMatchesIomem(_ guest: CapturedGuest, _ analysis: Analysis) throws {
    let space = KernelAddressSpace(memory: try guest.memory, location: analysis.location)
    let sections = try readelfSections(guest.manifest.kernel.directory + "/vmlinux")
    let ranges = [
      ("Kernel code", "_text", "_etext", ".text"), ("Kernel rodata", "__start_rodata", "__end_rodata", ".rodata"),
      ("Kernel data", "_sdata", "_edata", ".data"), ("Kernel bss", "__bss_start", "__bss_stop", ".bss"),
    ]
    for (name, from, to, section) in ranges {
      let entry = try #require(guest.iomem.entries.first { $0.name == name }, "no \(name) in the guest's iomem")
      let a = try #require(guest.layout.symbol(from)).rawValue
      let b = try #require(guest.layout.symbol(to)).rawValue
      #expect(sections[section] == a, "\(section) starts at \(String(a, radix: 16)) (\(from))")
      let pa = try #require(space.physical(space.running(a)))
      #expect(entry.range == pa...(pa + (b - a) - 1), "\(name): iomem \(entry.range), image \(pa) + \(b - a)")
    }
  }

  /// Hostile guest memory: the analyzer finishes, counts anomalies, and never crashes or hangs.
  @Test func corruptedGuestsAreSurvived() throws {
    let guest = try captureGuest(kernel: "6.1", workload: .web)
    defer { guest.discard() }
    let clean = try guest.memory
    let baseline = try Analyzer.analyze(memory: clean, layout: guest.layout)
    let space = KernelAddressSpace(memory: clean, location: baseline.location)
    let pristine = [UInt8](try Data(contentsOf: URL(fileURLWithPath: guest.snapshot + "/" + guest.manifest.ram)))
    var rng = SystemRandomNumberGenerator()
    func analyze(_ bytes: [UInt8]) throws -> Analysis {
      try Analyzer.analyze(memory: ByteMemory(bytes: bytes, regions: clean.regions), layout: guest.layout)
    }
    let pages = try PageStructLayout(layout: guest.layout)
    func load64(_ bytes: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }

    // 1. A cyclic task list that never returns to init_task.
    let tasksOff = UInt64(try guest.layout.offset(of: "task_struct", member: "tasks"))
    let initTask = space.running(guest.layout.symbol("init_task")!.rawValue)
    let firstNext = try #require(space.u64(initTask + tasksOff))
    var cyclic = pristine
    let secondListPA = try #require(space.physical(firstNext))
    for i in 0..<8 { cyclic[Int(secondListPA) + i] = UInt8(truncatingIfNeeded: firstNext >> (8 * UInt64(i))) }
    let a1 = try analyze(cyclic)
    #expect(a1.anomalies["task list did not return to init_task"] == 1)
    #expect(a1.map.frameCount == baseline.map.frameCount)

    // 2. Random bit flips in struct pages (the vmemmap of the first 64 MiB).
    var flipped = pristine
    let vmemmapPA = try #require(space.physical(baseline.location.vmemmapBase))
    for _ in 0..<5000 {
      let at = Int(vmemmapPA) + Int.random(in: 0..<(16384 * pages.size), using: &rng)
      flipped[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
    }
    let a2 = try analyze(flipped)
    #expect(a2.map.frameCount == baseline.map.frameCount)
    let changed = zip(a2.map.entries, baseline.map.entries).filter { $0 != $1 }.count
    #expect(changed > 0)
    #expect(changed < Int(baseline.map.frameCount) / 2, "damage stays local: \(changed) frames changed")

    // 3. Bit flips in every process's page tables: the analysis goes on, and what changes is
    // only what page tables decide (mapped/executable/dirty, page cache vs user code).
    var tables = pristine
    let mmOff = UInt64(try guest.layout.offset(of: "task_struct", member: "mm"))
    let pgdOff = UInt64(try guest.layout.offset(of: "mm_struct", member: "pgd"))
    var userTables = Set<UInt64>()
    var t = initTask
    for _ in 0..<4096 {
      if let mm = space.u64(t + mmOff), mm != 0, let pgd = space.u64(mm + pgdOff).flatMap(space.physical) {
        userTables.formUnion(space.tables.tablePages(root: pgd, includeKernel: false).pages)
      }
      guard let next = space.u64(t + tasksOff) else { break }
      t = next - tasksOff
      if t == initTask { break }
    }
    #expect(userTables.count > 20)
    for table in userTables {
      for _ in 0..<64 {
        let at = Int(table) + Int.random(in: 0..<4096, using: &rng)
        tables[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
      }
    }
    let a3 = try analyze(tables)
    let tableDecided: PageFlags = [.mapped, .executable, .dirty]
    var remapped = 0
    for (x, y) in zip(a3.map.entries, baseline.map.entries) where x != y {
      let a = FrameEntry(rawValue: x), b = FrameEntry(rawValue: y)
      let sameClass = a.color == b.color || Set([a.color, b.color]) == [.pageCache, .userCode]
      #expect(sameClass && a.flags.subtracting(tableDecided) == b.flags.subtracting(tableDecided), "\(b.color) -> \(a.color)")
      remapped += 1
    }
    #expect(remapped > 0, "flipped bits in \(userTables.count) user tables changed no frame")

    // 3b. The kernel's top-level entry for vmemmap cleared: no struct page can be read, so every
    // frame with a memory map is unknown + anomaly, and each is counted.
    // Cleared at the 1 GiB level (PUD): the direct map never shares a PUD entry with vmemmap.
    var unmapped = pristine
    let vmemmap = baseline.location.vmemmapBase
    var table = baseline.location.topTable
    for level in stride(from: space.tables.levels, to: 3, by: -1) {
      let entry = try #require(clean.u64(at: table + ((vmemmap >> PageTableWalker.shift(level)) & 511) * 8))
      table = entry & PageTableWalker.addressMask
    }
    let slot = Int(table + ((vmemmap >> 30) & 511) * 8)
    #expect(load64(pristine, slot) & 1 == 1)
    for i in 0..<8 { unmapped[slot + i] = 0 }
    let a3b = try analyze(unmapped)
    let unknown = a3b.map.entries.filter {
      FrameEntry(rawValue: $0).color == .unknown && FrameEntry(rawValue: $0).flags.contains(.anomaly)
    }.count
    #expect(unknown > Int(baseline.map.frameCount) / 2)
    #expect(a3b.anomalies["struct page not mapped"] == unknown, "\(a3b.anomalies)")
    #expect(a3b.map.entries.allSatisfy { [.unknown, .reserved].contains(FrameEntry(rawValue: $0).color) })

    // 4. Page-cache `mapping` pointers that point nowhere: those frames are no longer called
    // page cache; each is unknown + anomaly and counted.
    var mappings = pristine
    let nowhere: UInt64 = 0xffff_8888_dead_b000  // kernel-looking, page-aligned, unmapped
    let broken = Array(baseline.map.extents.prefix(200))
    for e in broken {
      let pa = try #require(space.physical(baseline.location.vmemmapBase + e.start * UInt64(pages.size)))
      for i in 0..<8 { mappings[Int(pa) + pages.mapping + i] = UInt8(truncatingIfNeeded: nowhere >> (8 * UInt64(i))) }
    }
    let a4 = try analyze(mappings)
    for e in broken {
      let entry = try #require(a4.map.entry(at: e.start))
      #expect(entry.color == .unknown && entry.flags.contains(.anomaly), "frame \(e.start): \(entry.color)")
    }
    let lost = zip(a4.map.entries, baseline.map.entries).filter {
      FrameEntry(rawValue: $0).color == .unknown && FrameEntry(rawValue: $1).color != .unknown
    }.count
    #expect(lost >= broken.count)
    #expect(a4.anomalies["page-cache mapping not readable"] == lost, "\(a4.anomalies)")

    // 4b. A misaligned free buddy block (order 1 at an odd frame, where the walk reads the
    // struct page: an allocated, non-compound frame): counted, and that frame unknown + anomaly.
    func pagePA(_ f: Int) throws -> Int {
      Int(try #require(space.physical(baseline.location.vmemmapBase + UInt64(f) * UInt64(pages.size))))
    }
    var target: Int? = nil
    for f in stride(from: 1, to: Int(baseline.map.frameCount), by: 2)
    where [.kernelOther, .userData].contains(FrameEntry(rawValue: baseline.map.entries[f]).color) {
      let at = try pagePA(f)
      if load64(pristine, at + pages.compoundHead) & 1 == 0, load64(pristine, at + pages.flags) & (1 << UInt64(pages.pgHead)) == 0 {
        target = f
        break
      }
    }
    let odd = try #require(target)
    var misaligned = pristine
    let at = try pagePA(odd)
    let buddyType: UInt32
    switch pages.encoding {
    case .clearedBit(_, let bits): buddyType = ~(try #require(bits[.buddy]))
    case .topByte(let values): buddyType = UInt32(try #require(values[.buddy])) << 24
    }
    for i in 0..<4 { misaligned[at + pages.pageType + i] = UInt8(truncatingIfNeeded: buddyType >> (8 * UInt32(i))) }
    for i in 0..<8 { misaligned[at + pages.privateField + i] = i == 0 ? 1 : 0 }
    let a4b = try analyze(misaligned)
    #expect(a4b.anomalies["misaligned buddy block"] == 1, "\(a4b.anomalies)")
    #expect(a4b.map.entry(at: UInt64(odd)).map { $0.color == .unknown && $0.flags.contains(.anomaly) } == true)

    // 5. Garbage: no kernel at all.
    let garbage = (0..<(64 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    #expect(throws: AnalyzerError.self) {
      try Analyzer.analyze(memory: ByteMemory(bytes: garbage), layout: guest.layout)
    }
  }
}

/// Section start addresses of an ELF file, from binutils' readelf (not kscope's ELF reader).
func readelfSections(_ path: String) throws -> [String: UInt64] {
  let p = Process()
  let pipe = Pipe()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/readelf")
  p.arguments = ["-SW", path]
  p.standardOutput = pipe
  try p.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  guard p.terminationStatus == 0 else { throw AnalyzerTestError("readelf -SW \(path) failed") }
  var out: [String: UInt64] = [:]
  // "  [ 1] .text  PROGBITS  ffffffff81000000 200000 e02d21 00  AX  0   0 4096"
  for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
    guard let close = line.firstIndex(of: "]"), line.contains("[") else { continue }
    let fields = line[line.index(after: close)...].split(separator: " ")
    if fields.count >= 3, let addr = UInt64(fields[2], radix: 16) { out[String(fields[0])] = addr }
  }
  return out
}
