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

/// Real guests colored with no debug package: the layout from the kernel's BTF and kallsyms
/// in guest memory equals the DWARF layout (arrays compared flattened, the one legitimate
/// difference), and colors the snapshot frame for frame the same. Needs QEMU and the cached
/// kernels (host/setup.sh); fails, never skips, without them.
@Suite(.serialized) struct GuestBTFTests {
  /// The pinned kernels and an older 6.1 ABI (6.1.0-47, cached by the layout tests' fetch).
  @Test(arguments: ["6.1", "6.12", "6.1.0-47-cloud-amd64"]) func guestMemoryLayoutColorsTheSame(kernel: String) throws {
    if kernel.contains("-cloud-") { try KernelCache.fetchIfMissing(kernel) }
    try withSnapshot(kernel: kernel, tag: kernel, webRequests: 50) { state, snapshot, manifest in
      let memory = try RAMImage(
        path: snapshot + "/" + manifest.ram,
        regions: manifest.memoryLayout)

      let dwarf = try LayoutExtractor.extract(vmlinux: manifest.kernel.directory + "/vmlinux")
      let found = try GuestKernelImage.layout(memory: memory, buildID: manifest.kernel.buildID)
      let btf = found.layout
      #expect(btf.sources.map(\.kind) == ["btf", "kallsyms"])
      let diffs = btf.differences(from: dwarf)
      #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")

      let a = try Analyzer.analyze(memory: memory, layout: btf)
      let b = try Analyzer.analyze(memory: memory, layout: dwarf)
      #expect(a.map.entries == b.map.entries)
      #expect(a.map.extents == b.map.extents)
      #expect(a.processes == b.processes)
      #expect(a.map.header.kernelBuildID == manifest.kernel.buildID)

      // `kscope color SNAPSHOT` with no debug info on the machine (an empty cache, a manifest
      // whose kernel directory is empty): the layout comes from guest memory, nothing is
      // downloaded, and the map is the DWARF map.
      let bare = state + "/bare"
      let empty = state + "/empty"
      try FileManager.default.createDirectory(atPath: bare, withIntermediateDirectories: true)
      try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
      for f in try FileManager.default.contentsOfDirectory(atPath: snapshot) where f != "manifest.json" {
        try FileManager.default.linkItem(atPath: snapshot + "/" + f, toPath: bare + "/" + f)  // a hard link: the manifest checks sizes
      }
      var json = try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: snapshot + "/manifest.json"))) as? [String: Any])
      var kernelJSON = try #require(json["kernel"] as? [String: Any])
      kernelJSON["directory"] = empty
      json["kernel"] = kernelJSON
      try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: bare + "/manifest.json"))
      let bareRun = try runKscope(
        ["color", bare, "-o", state + "/bare.kcm", "--no-digest"], environment: ["KSCOPE_CACHE": empty])
      #expect(bareRun.status == 0, "\(bareRun.stderr)")
      let cli = try ColorMapFile.open(state + "/bare.kcm")
      #expect(cli.entries == b.map.entries)
      let origin = cli.header.metadata.first { $0.0 == "source.layout" }?.1 ?? ""
      #expect(origin.hasPrefix("btf+kallsyms:guest-memory"), "\(origin)")
      #expect((try? FileManager.default.contentsOfDirectory(atPath: empty)) == [])
      // --btf: BTF although the debug info is cached.
      let forcedRun = try runKscope(["color", snapshot, "--btf", "-o", state + "/forced.kcm", "--no-digest"])
      #expect(forcedRun.status == 0, "\(forcedRun.stderr)")
      let forced = try ColorMapFile.open(state + "/forced.kcm")
      #expect(forced.entries == b.map.entries)
      #expect(forced.header.metadata.first { $0.0 == "source.layout" }?.1.hasPrefix("btf+kallsyms:guest-memory") == true)

      // A build the memory does not hold is refused, not guessed.
      #expect(throws: BTFError.self) {
        try GuestKernelImage.layout(memory: memory, buildID: String(repeating: "0", count: 40))
      }
    }
  }

  /// Damaged images: the BTF blob or the kallsyms tables in guest memory overwritten. Each is
  /// a one-line error naming the problem, never a crash or a layout.
  @Test func damagedGuestImagesAreErrors() throws {
    guard KernelCache.release("6.12") != nil else { return }
    try withSnapshot(kernel: "6.12", tag: "damage", webRequests: 0) { state, snapshot, manifest in
      let ramPath = snapshot + "/" + manifest.ram
      let regions = manifest.memoryLayout
      let memory = try RAMImage(path: ramPath, regions: regions)
      let found = try GuestKernelImage.layout(memory: memory)
      #expect(found.btfBytes > 1 << 20)

      /// Every file offset where `needle` is in guest RAM.
      func offsets(of needle: [UInt8]) -> [UInt64] {
        var out: [UInt64] = []
        var from: UInt64 = 0
        while out.count < 64, let pa = memory.find(needle, from: from) {
          let r = regions.first { pa >= $0.guestPhysicalStart && pa < $0.end }!
          out.append(r.fileOffset + pa - r.guestPhysicalStart)
          from = pa + 1
        }
        return out
      }
      /// A copy of the RAM with `patch` written at each offset, and the error reading it gives.
      func damagedError(_ at: [UInt64], _ patch: [UInt8]) throws -> String? {
        let copy = state + "/damaged"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: ramPath, toPath: copy)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: copy))
        for o in at {
          try h.seek(toOffset: o)
          try h.write(contentsOf: Data(patch))
        }
        try h.close()
        defer { try? FileManager.default.removeItem(atPath: copy) }
        do {
          _ = try GuestKernelImage.layout(memory: try RAMImage(path: copy, regions: regions))
          return nil
        } catch {
          return "\(error)"
        }
      }
      // BTF whose type section is longer than the blob.
      let btfHeader: [UInt8] = [0x9F, 0xEB, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0]
      let headers = offsets(of: btfHeader)
      #expect(!headers.isEmpty)
      let e1 = try damagedError(headers.map { $0 + 12 }, [0xFF, 0xFF, 0xFF, 0x0F])
      #expect(e1?.contains("BTF") == true, "\(e1 ?? "accepted")")
      #expect(e1?.contains("\n") == false)
      // kallsyms offsets out of order (found through vmcoreinfo, or by shape: both refuse).
      var first: VMCoreInfo? = nil
      GuestKernelImage.pageAlignedNotes(in: memory) { _, info in
        first = info
        return true
      }
      let info = try #require(first)
      let offsetsVA = try #require(info.symbol("kallsyms_offsets"))
      let pa = offsetsVA &- startKernelMap &+ info.physBase! &+ 400  // phys_base is negative under KASLR
      let r = regions.first { pa >= $0.guestPhysicalStart && pa < $0.end }!
      let e2 = try damagedError([r.fileOffset + pa - r.guestPhysicalStart], [0xFF, 0xFF, 0xFF, 0x7F])
      #expect(e2?.contains("kallsyms") == true, "\(e2 ?? "accepted")")
      #expect(e2?.contains("\n") == false)
    }
  }

  /// Boots a 512 MiB web guest of `kernel`, sends it `webRequests` requests, snapshots it
  /// (paused) and hands `body` the state directory, the snapshot and its manifest; the guest
  /// is stopped and its state removed afterwards, and a guest left running fails the test.
  private func withSnapshot(
    kernel: String, tag: String, webRequests: Int,
    _ body: (_ state: String, _ snapshot: String, _ manifest: SnapshotManifest) throws -> Void
  ) throws {
    let state = "/dev/shm/kscope-btf-test-\(getpid())-\(tag)"
    let vms = VMManager(stateDir: state)
    defer {
      let leftovers = vms.stopAll()
      #expect(leftovers.isEmpty, "\(leftovers)")
      try? FileManager.default.removeItem(atPath: state)
    }
    var options = StartOptions()
    options.kernelSeries = kernel
    options.workload = .web
    options.memory = 512 << 20
    try vms.start(name: "btf", options: options)
    if webRequests > 0 {
      _ = try WorkloadDriver.web(port: try vms.record("btf").config.hostPort, requests: webRequests)
    }
    let snapshot = state + "/snapshot"
    try body(state, snapshot, try vms.snapshot(name: "btf", to: snapshot, resume: false))
  }
}
