import Foundation
import KscopeCore
import KscopeDebugInfo
import KscopeLayout
import KscopeVM
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
  var layout: KernelLayout

  func discard() { try? FileManager.default.removeItem(atPath: stateDir) }

  var memory: RAMImage {
    get throws {
      try RAMImage(
        path: snapshot + "/" + manifest.ram,
        regions: manifest.memoryLayout.map {
          GuestRAMRegion(start: $0.guestPhysicalStart, size: $0.size, fileOffset: $0.fileOffset)
        })
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
  let layout = try LayoutExtractor.extract(vmlinux: manifest.kernel.directory + "/vmlinux")
  ok = true
  return CapturedGuest(
    stateDir: state, kernel: kernel, workload: workload, snapshot: snapshot, manifest: manifest, kpageflags: flags, layout: layout)
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
  @Test(arguments: [("6.1", Workload.web), ("6.1", .olap), ("6.12", .web), ("6.12", .olap)])
  func agreesWithKpageflags(kernel: String, workload: Workload) throws {
    let guest = try captureGuest(kernel: kernel, workload: workload)
    defer { guest.discard() }
    let analysis = try Analyzer.analyze(memory: try guest.memory, layout: guest.layout)
    #expect(analysis.map.header.kernelBuildID == guest.manifest.kernel.buildID)
    #expect(analysis.processes.count > 3)
    let cmp = OracleComparison(entries: analysis.map.entries, flags: guest.kpageflags)
    print("\(kernel) \(workload.rawValue): compared \(cmp.comparedFrames) frames; anomalies \(analysis.anomalies)")
    for c in cmp.classes {
      print("  \(c.oracleClass.rawValue): \(c.agreeing)/\(c.frames) agree, \(c.extra) extra")
    }
    for (k, row) in cmp.matrix.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
      print("  \(k.rawValue) -> " + row.sorted { $0.value > $1.value }.map { "\($0.key.name) \($0.value)" }.joined(separator: ", "))
    }
    for c in cmp.classes {
      #expect(c.frames > 0, "the guest has no \(c.oracleClass.rawValue) frames at all")
      #expect(c.agreement >= 0.99, "\(kernel) \(workload.rawValue): \(c.oracleClass.rawValue) agrees on \(c.agreeing) of \(c.frames)")
    }
    // Page-cache frames carry their file identity.
    #expect(analysis.map.extents.count > 10)
    #expect(analysis.map.count(of: .userCode) > 0, "busybox text mapped executable")
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

    // 3. Bit flips in every process's page tables and the kernel's top table.
    var tables = pristine
    let kernelTables = space.tables.tablePages(root: baseline.location.topTable, includeKernel: true).pages
    for t in kernelTables.prefix(64) {
      for _ in 0..<64 {
        let at = Int(t) + Int.random(in: 0..<4096, using: &rng)
        tables[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
      }
    }
    _ = try? analyze(tables)  // may not even find the kernel's page tables: an error, not a crash

    // 4. Page-cache `mapping` pointers that point nowhere.
    var mappings = pristine
    for e in baseline.map.extents.prefix(200) {
      let pa = try #require(space.physical(baseline.location.vmemmapBase + e.start * UInt64(pages.size)))
      let nowhere: UInt64 = 0xffff_8888_dead_b000  // kernel-looking, page-aligned, unmapped
      for i in 0..<8 { mappings[Int(pa) + pages.mapping + i] = UInt8(truncatingIfNeeded: nowhere >> (8 * UInt64(i))) }
    }
    let a4 = try analyze(mappings)
    #expect(a4.anomalies["page-cache mapping not readable", default: 0] > 0)

    // 5. Garbage: no kernel at all.
    let garbage = (0..<(64 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    #expect(throws: AnalyzerError.self) {
      try Analyzer.analyze(memory: ByteMemory(bytes: garbage), layout: guest.layout)
    }
  }
}
