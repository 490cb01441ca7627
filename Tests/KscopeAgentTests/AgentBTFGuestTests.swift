import Foundation
import KscopeCore
import KscopeHints
import KscopeTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The kernel's BTF published by the agent in real guests (Debian 6.1 and 6.12 under QEMU):
/// `kscope color SNAPSHOT` on a machine with no debug info builds the layout from the agent's
/// BTF (with kallsyms and vmcoreinfo from guest memory) and colors the snapshot frame for frame
/// as the vmlinux's DWARF layout does. Needs root, QEMU and the cached kernels (host/setup.sh);
/// fails saying what is missing, never skips.
@Suite(.serialized) struct AgentBTFGuestTests {
  @Test(arguments: ["6.12", "6.1"])
  func agentBTFColorsLikeTheVmlinux(kernel: String) throws {
    try AgentGuestTests.requirements()
    let agent = try AgentGuestTests.shippedAgent()
    setenv("KSCOPE_GUEST_ASSETS", AgentGuestTests.repository + "/guest-module", 1)
    let vm = AgentGuestTests.VM(
      state: "/dev/shm/kscope-agent-btf-\(getpid())-\(kernel)", name: "btf")
    try? FileManager.default.removeItem(atPath: vm.state)
    defer {
      _ = try? vm.kscope(["vm", "stop", vm.name])
      try? FileManager.default.removeItem(atPath: vm.state)
    }
    let start = try vm.kscope(
      [
        "vm", "start", vm.name, "--kernel", kernel, "--workload", "web", "--memory", "512M",
        "--agent", agent, "--json",
      ])
    guard start.status == 0 else { throw TestFailure("kscope vm start failed: \(start.stderr)") }
    let started = try JSONSerialization.jsonObject(with: Data(start.stdout.utf8)) as? [String: Any]
    let release = started?["kernel"] as? String ?? "?"
    _ = try waitForGeneration(vm.hintsPath, above: 0)
    let work = try vm.kscope(["workload", "web", "--vm", vm.name, "--requests", "30"])
    #expect(work.status == 0, "\(work.stderr)")

    // The agent published the guest's own /sys/kernel/btf/vmlinux: its size and XXH64.
    let live = try HintRegionFile.read(vm.hintsPath)
    let published = try #require(live.btf, "no BTF in the hints: \(live.metadata)")
    let size = UInt64(
      try vm.exec("wc -c < /sys/kernel/btf/vmlinux").trimmingCharacters(in: .whitespacesAndNewlines)
    )
    #expect(published.size == size)
    #expect(published.data.count < Int(published.size) / 2, "zstd should at least halve BTF")
    #expect(!live.partial, "\(live.metadata)")

    let snap = vm.state + "/snap"
    let s = try vm.kscope(["vm", "snapshot", vm.name, "-o", snap])
    #expect(s.status == 0, "\(s.stderr)")
    let read = try vm.readHints(snap, json: true)
    let hintsJSON =
      try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String: Any] ?? [:]
    #expect(
      ((hintsJSON["btf"] as? [String: Any])?["size"] as? NSNumber)?.uint64Value == size,
      "\(read.stderr)")

    // The reference: the vmlinux's DWARF.
    let vmlinux = try AgentGuestTests().vmlinuxPath(release)
    let dwarf = try runProgram(
      kscopeBinary(),
      ["color", snap, "--vmlinux", vmlinux, "-o", vm.state + "/dwarf.kcm", "--no-digest", "--json"])
    #expect(dwarf.status == 0, "\(dwarf.stderr)")

    // No debug info on the machine: an empty cache, a manifest whose kernel directory is empty.
    let bare = vm.state + "/bare"
    let empty = vm.state + "/empty"
    try FileManager.default.createDirectory(atPath: bare, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
    for f in try FileManager.default.contentsOfDirectory(atPath: snap)
    where f != "manifest.json" && !f.hasSuffix(".kcm") {
      try FileManager.default.linkItem(atPath: snap + "/" + f, toPath: bare + "/" + f)
    }
    var manifest = try #require(
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: snap + "/manifest.json"))) as? [String: Any])
    var kernelJSON = try #require(manifest["kernel"] as? [String: Any])
    kernelJSON["directory"] = empty
    manifest["kernel"] = kernelJSON
    try JSONSerialization.data(withJSONObject: manifest).write(
      to: URL(fileURLWithPath: bare + "/manifest.json"))
    let btf = try runProgram(
      "/usr/bin/env",
      [
        "KSCOPE_CACHE=" + empty, try kscopeBinary(), "color", bare, "-o", vm.state + "/btf.kcm",
        "--no-digest", "--json",
      ])
    #expect(btf.status == 0, "\(btf.stderr)")
    let json =
      try JSONSerialization.jsonObject(with: Data(btf.stdout.utf8)) as? [String: Any] ?? [:]
    let origin = json["layout"] as? String ?? ""
    #expect(origin.hasPrefix("btf+kallsyms:agent-hints"), "\(origin)")
    #expect(!origin.contains("agent BTF not used"), "\(origin)")
    #expect(
      (try? FileManager.default.contentsOfDirectory(atPath: empty)) == [],
      "something was downloaded")
    let text = try runProgram(
      "/usr/bin/env",
      [
        "KSCOPE_CACHE=" + empty, try kscopeBinary(), "color", bare, "-o", vm.state + "/btf2.kcm",
        "--no-digest",
      ])
    #expect(text.stdout.contains("layout: btf+kallsyms:agent-hints"), "\(text.stdout)")

    // Frame for frame the same map: colors, flags, page-cache extents.
    let a = try ColorMapFormat.decode(
      Array(try Data(contentsOf: URL(fileURLWithPath: vm.state + "/dwarf.kcm"))))
    let b = try ColorMapFormat.decode(
      Array(try Data(contentsOf: URL(fileURLWithPath: vm.state + "/btf.kcm"))))
    #expect(a.entries.count == b.entries.count && a.entries.count > 100_000)
    var differ = 0
    for i in a.entries.indices where a.entries[i] != b.entries[i] { differ += 1 }
    #expect(differ == 0, "\(differ) frames differ between the DWARF and the agent-BTF maps")
    #expect(a.extents == b.extents)
    #expect(b.header.metadata.first { $0.0 == "source.layout" }?.1 == origin)
    print(
      "\(kernel): agent BTF \(published.size) bytes (zstd \(published.data.count)); \(a.entries.count) frames, \(differ) differ; \(origin)"
    )

    // --no-hints: the agent's BTF is not used either; the layout comes from guest memory.
    let noHints = try runProgram(
      "/usr/bin/env",
      [
        "KSCOPE_CACHE=" + empty, try kscopeBinary(), "color", bare, "--no-hints", "-o",
        vm.state + "/mem.kcm", "--no-digest", "--json",
      ])
    let nh =
      try JSONSerialization.jsonObject(with: Data(noHints.stdout.utf8)) as? [String: Any] ?? [:]
    #expect(
      (nh["layout"] as? String)?.hasPrefix("btf+kallsyms:guest-memory") == true, "\(noHints.stderr)"
    )
    let hostOnly = try ColorMapFormat.decode(
      Array(try Data(contentsOf: URL(fileURLWithPath: vm.state + "/mem.kcm"))))

    // A hostile guest: hints for another build, and a damaged BTF stream behind a valid region
    // checksum. Neither BTF is used (the origin says why); the layout comes from guest memory,
    // and the map is the host-only one (hints for another build are not merged either) or the
    // same as with the good hints.
    let saved = try HintRegionFile.read(bare + "/hints")
    func forged(_ name: String, expect: ColorMap, _ change: (inout HintContent) -> Void) throws
      -> [String: Any]
    {
      var c = HintContent(
        kernelRelease: saved.kernelRelease, buildID: saved.buildID, published: saved.published,
        pageSize: saved.pageSize, kernel: saved.kernel, frames: saved.frames, files: Array(saved.files),
        metadata: saved.metadata, incomplete: saved.partial, btf: saved.btf)
      change(&c)
      let e = try HintFormat.encode(
        c, regionSize: Int(saved.regionSize), generation: saved.generation)
      let dir = vm.state + "/" + name
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      for f in try FileManager.default.contentsOfDirectory(atPath: bare) where f != "hints" {
        try FileManager.default.linkItem(atPath: bare + "/" + f, toPath: dir + "/" + f)
      }
      try Data(e.bytes + [UInt8](repeating: 0, count: Int(saved.regionSize) - e.bytes.count))
        .write(to: URL(fileURLWithPath: dir + "/hints"))
      let r = try runProgram(
        "/usr/bin/env",
        [
          "KSCOPE_CACHE=" + empty, try kscopeBinary(), "color", dir, "-o", dir + "/map.kcm",
          "--no-digest", "--json",
        ])
      #expect(r.status == 0, "\(name): \(r.stderr)")
      let m = try ColorMapFormat.decode(
        Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/map.kcm"))))
      #expect(m.entries == expect.entries, "\(name): the map differs")
      return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
    }
    let otherBuild = try forged("other-build", expect: hostOnly) {
      $0.buildID = [UInt8](repeating: 0xAB, count: 20)
    }
    let o1 = otherBuild["layout"] as? String ?? ""
    #expect(
      o1.hasPrefix("btf+kallsyms:guest-memory")
        && o1.contains("agent BTF not used: the hints are for build abab"), "\(o1)")
    let damaged = try forged("damaged-btf", expect: a) { $0.btf?.data[100] ^= 0xFF }
    let o2 = damaged["layout"] as? String ?? ""
    #expect(
      o2.hasPrefix("btf+kallsyms:guest-memory") && o2.contains("agent BTF not used: published BTF"),
      "\(o2)")
  }
}
