import Foundation
import KscopeAgent
import KscopeCore
import KscopeTestSupport
import KscopeHints
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The agent inside real guests (Debian 6.1 and 6.12 cloud kernels under QEMU, built and booted
/// by `kscope vm`): the host reads the hints while the guest runs and from a snapshot; the
/// KASLR hints match the vmcoreinfo note found in guest RAM and what the host analyzer finds;
/// the page-cache table names the workload's real files; a guest writing garbage is refused
/// with one line and leaves the analyzer working. Needs root, QEMU and the guest kernels
/// (host/setup.sh); fails saying what is missing, never skips.
@Suite(.serialized) struct AgentGuestTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

  /// The agent as shipped: release, static Swift stdlib. Built once per run (CI has no other
  /// step that builds it), or taken from KSCOPE_AGENT_BINARY.
  static func shippedAgent() throws -> String {
    if let p = ProcessInfo.processInfo.environment["KSCOPE_AGENT_BINARY"], !p.isEmpty { return p }
    let scratch = repository + "/.build-agent-e2e"
    let build = try runProgram(
      "/usr/bin/env",
      ["swift", "build", "-c", "release", "--package-path", repository, "--scratch-path", scratch,
       "--product", "kscope-agent", "--static-swift-stdlib"])
    guard build.status == 0 else {
      throw TestFailure("building the static agent failed: \(build.stderr.suffix(2000)) \(build.stdout.suffix(2000))")
    }
    return scratch + "/release/kscope-agent"
  }

  static func requirements() throws {
    guard getuid() == 0 else { throw TestFailure("the guest tests need root (QEMU, /dev/shm, kpageflags)") }
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64") else {
      throw TestFailure("qemu-system-x86_64 is missing: run host/setup.sh")
    }
  }

  struct VM {
    let state: String
    let name: String
    var hintsPath: String { state + "/vms/" + name + "/hints" }

    func kscope(_ args: [String]) throws -> ProgramRun {
      try runProgram(kscopeBinary(), args + ["--state-dir", state])
    }

    /// `kscope hints read` (which takes no state directory).
    func readHints(_ path: String, json: Bool = false) throws -> ProgramRun {
      try runProgram(kscopeBinary(), ["hints", "read", path] + (json ? ["--json"] : []))
    }

    func exec(_ command: String) throws -> String {
      let r = try kscope(["vm", "exec", name, command])
      guard r.status == 0 else { throw TestFailure("guest command failed (\(r.status)): \(command): \(r.stderr)") }
      return r.stdout
    }
  }

  @Test(arguments: ["6.1", "6.12"])
  func agentInAGuest(kernel: String) throws {
    try Self.requirements()
    let agent = try Self.shippedAgent()
    setenv("KSCOPE_GUEST_ASSETS", Self.repository + "/guest-module", 1)
    let vm = VM(state: "/dev/shm/kscope-agent-e2e-\(getpid())-\(kernel)", name: "agent")
    try? FileManager.default.removeItem(atPath: vm.state)
    defer {
      _ = try? vm.kscope(["vm", "stop", vm.name])
      try? FileManager.default.removeItem(atPath: vm.state)
    }
    let start = try vm.kscope(
      ["vm", "start", vm.name, "--kernel", kernel, "--workload", "web", "--agent", agent, "--json"])
    guard start.status == 0 else { throw TestFailure("kscope vm start failed: \(start.stderr)") }
    let started = try JSONSerialization.jsonObject(with: Data(start.stdout.utf8)) as? [String: Any]
    let release = started?["kernel"] as? String ?? "?"

    // The agent publishes soon after boot, without being asked.
    let first = try waitForGeneration(vm.hintsPath, above: 0)
    #expect(first >= 2)

    // Serve the workload so its files are cached, then ask for a refresh now.
    let work = try vm.kscope(["workload", "web", "--vm", vm.name, "--requests", "60"])
    #expect(work.status == 0, "\(work.stderr)")
    _ = try vm.exec("kill -USR1 $(pidof kscope)")
    let second = try waitForGeneration(vm.hintsPath, above: first)
    let live = try HintRegionFile.read(vm.hintsPath)
    #expect(live.generation >= second)

    // Kernel identity and symbols against the guest's own view.
    #expect(live.kernelRelease == release)
    #expect(try vm.exec("uname -r").trimmingCharacters(in: .whitespacesAndNewlines) == release)
    let textLine = try vm.exec("grep ' _text$' /proc/kallsyms")
    #expect(live.kernel.text?.rawValue == UInt64(textLine.prefix(16), radix: 16))
    #expect(live.kernel.pageOffsetBase != nil && live.kernel.vmemmapBase != nil && live.kernel.physBase != nil)
    #expect(live.kernel.pagingLevels == 5, "QEMU -cpu max guests run with la57")
    let frames = UInt64(try vm.exec("wc -c < /proc/kpageflags").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    #expect(live.frames?.totalFrames == frames / 8 && live.frames?.frameCount == frames / 8)
    #expect(!live.partial, "\(live.metadata)")

    // The page-cache table names the workload's real files, with their real inodes and sizes.
    let site = live.files.filter { $0.path.hasPrefix("/data/site/") }
    #expect(site.count >= 10, "workload files in the table: \(site.count) of \(live.files.count)")
    for f in site.prefix(8) {
      let st = try vm.exec("stat -c '%i %s' '\(f.path)'").split(separator: " ")
      #expect(st.count == 2 && UInt64(st[0]) == f.inode && UInt64(st[1].filter(\.isNumber)) == f.size, "\(f.path)")
      #expect(f.framesKnown)
    }

    // The command line's JSON carries the documented keys.
    let cli = try vm.readHints(vm.hintsPath, json: true)
    #expect(cli.status == 0, "\(cli.stderr)")
    let json = try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? [String: Any] ?? [:]
    #expect(json["generation"] is NSNumber, "generation is not an integer in \(cli.stdout.prefix(300))")
    for key in ["kaslr_offset", "phys_base", "page_offset_base", "vmemmap_base"] {
      #expect(jsonAddress(json[key]) != nil, "\(key) is not a hex address in \(cli.stdout.prefix(300))")
    }
    #expect((json["files"] as? [[String: Any]])?.contains { ($0["path"] as? String)?.hasPrefix("/data/site/") == true } == true)

    // After a snapshot: the same hints, and the KASLR hints match the vmcoreinfo note in RAM
    // and what the host analyzer finds from outside.
    let snap = vm.state + "/snap"
    let s = try vm.kscope(["vm", "snapshot", vm.name, "-o", snap, "--resume"])
    #expect(s.status == 0, "\(s.stderr)")
    let saved = try HintRegionFile.read(snap + "/hints")
    let viaManifest = try vm.readHints(snap, json: true)
    #expect(viaManifest.status == 0, "\(viaManifest.stderr)")
    let note = try vmcoreinfoInRAM(snap + "/ram", release: release)
    #expect(saved.kernel.vmcoreinfo?.address.rawValue == note.address)
    #expect(saved.kernel.kaslrOffset == note.values["KERNELOFFSET"].flatMap { UInt64($0, radix: 16) })
    #expect(saved.kernel.physBase == note.values["NUMBER(phys_base)"].flatMap { Int64($0) }.map { UInt64(bitPattern: $0) })
    let analyzer = try analyze(vm, snapshot: snap, release: release)
    // The KASLR offset against a source neither side reads it from: the running kernel's
    // _text (the guest's /proc/kallsyms) minus the vmlinux's _text (binutils' nm).
    let runningText = try #require(UInt64(textLine.prefix(16), radix: 16))
    let linkText = try #require(try nmAddress("_text", in: try vmlinuxPath(release)))
    let kaslr = runningText &- linkText
    #expect(kaslr % (2 << 20) == 0, "KASLR moves the kernel in 2 MiB steps: \(String(kaslr, radix: 16))")
    #expect(saved.kernel.kaslrOffset == kaslr, "the agent's KASLR offset")
    #expect(jsonAddress(analyzer["kaslr_offset"]) == kaslr, "the analyzer's KASLR offset")
    #expect(jsonAddress(analyzer["phys_base"]) == saved.kernel.physBase)
    #expect(jsonAddress(analyzer["page_offset_base"]) == saved.kernel.pageOffsetBase?.rawValue)
    // The combined map: the snapshot's hints were merged, host introspection stayed the
    // authority, and the workload's cached files got their names.
    let merged = analyzer["hints"] as? [String: Any] ?? [:]
    #expect(merged["used"] as? Bool == true, "\(merged)")
    #expect((analyzer["sources"] as? [String])?.contains("guest-hints") == true)
    let compared = (merged["compared_frames"] as? NSNumber)?.intValue ?? 0
    let agreeing = (merged["agreeing_frames"] as? NSNumber)?.intValue ?? 0
    // The README's figure: the hints agree with host introspection on at least 99.00% of the
    // frames both can class (the rest changed between the agent's last publication and the pause).
    print("\(kernel) web: hints agree on \(agreeing) of \(compared) comparable frames, \(merged["named_extents"] ?? 0) named extents")
    #expect(compared > 1000 && agreeing * 10_000 >= 9_900 * compared, "\(merged)")
    #expect(((merged["named_extents"] as? NSNumber)?.intValue ?? 0) > 0, "\(merged)")
    let named = try runProgram(kscopeBinary(), ["map", "query", snap + "/map.kcm", "--color", "page-cache", "--limit", "0", "--json"])
    #expect(named.stdout.contains("/data/"), "no workload file named in the map")

    // A guest that writes garbage: the host refuses every read with one line, and the analyzer
    // still colors the guest from host-only introspection.
    _ = try vm.exec(
      "kill $(pidof kscope); sleep 1; (/usr/bin/kscope agent --garbage --seed 11 --interval 200ms --cpu-budget 0 > /dev/null 2>&1 &)")
    // The garbage agent's first round can take a while under TCG on a busy machine (most
    // rounds gather real hints before damaging them): wait until the old valid hints are gone.
    let garbageDeadline = Date(timeIntervalSinceNow: 120)
    while try vm.readHints(vm.hintsPath).status == 0 {
      guard Date() < garbageDeadline else {
        Issue.record("the garbage agent did not overwrite the hints within 120 s")
        break
      }
      usleep(250_000)
    }
    for _ in 0..<10 {
      let r = try vm.readHints(vm.hintsPath)
      #expect(r.status == 1, "garbage accepted: \(r.stdout.prefix(300))")
      #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
      usleep(150_000)
    }
    let snap2 = vm.state + "/snap-garbage"
    let s2 = try vm.kscope(["vm", "snapshot", vm.name, "-o", snap2, "--resume"])
    #expect(s2.status == 0, "\(s2.stderr)")
    #expect(try vm.readHints(snap2).status == 1)
    let again = try analyze(vm, snapshot: snap2, release: release)
    #expect(jsonAddress(again["kaslr_offset"]) == kaslr)
    let setAside = again["hints"] as? [String: Any] ?? [:]
    #expect(setAside["used"] as? Bool == false, "garbage hints were used: \(setAside)")
    #expect((setAside["note"] as? String)?.contains("host introspection only") == true, "\(setAside)")
    #expect((jsonU64(again["frames"]) ?? 0) == frames / 8)
  }

  /// The cached vmlinux of a release.
  func vmlinuxPath(_ release: String) throws -> String {
    let cache = ProcessInfo.processInfo.environment["KSCOPE_CACHE"].flatMap { $0.isEmpty ? nil : $0 } ?? "/var/cache/kscope"
    let vmlinux = cache + "/kernels/" + release + "/vmlinux"
    guard FileManager.default.fileExists(atPath: vmlinux) else {
      throw TestFailure("\(vmlinux) is missing: run host/setup.sh (host/fetch-kernels.sh)")
    }
    return vmlinux
  }

  /// A symbol's link-time address as binutils' nm reads the ELF file.
  func nmAddress(_ symbol: String, in path: String) throws -> UInt64? {
    let r = try runProgram("/usr/bin/nm", [path])
    guard r.status == 0 else { throw TestFailure("nm \(path) failed: \(r.stderr)") }
    for line in r.stdout.split(separator: "\n") {
      let f = line.split(separator: " ")
      if f.count == 3, f[2] == symbol { return UInt64(f[0], radix: 16) }
    }
    return nil
  }

  /// `kscope color SNAPSHOT --vmlinux` (the host analyzer); its JSON.
  func analyze(_ vm: VM, snapshot: String, release: String) throws -> [String: Any] {
    let vmlinux = try vmlinuxPath(release)
    let r = try runProgram(
      kscopeBinary(), ["color", snapshot, "--vmlinux", vmlinux, "-o", snapshot + "/map.kcm", "--json"])
    guard r.status == 0 else { throw TestFailure("the analyzer failed on \(snapshot): \(r.stderr)") }
    return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
  }
}

/// An integer from kscope's JSON: a number, or an address written as a "0x..." hex string.
/// A signed value (phys_base) as its 64-bit pattern.
func jsonU64(_ v: Any?) -> UInt64? {
  if let s = v as? String {
    if s.hasPrefix("-0x") { return Int64(s.dropFirst(3), radix: 16).map { UInt64(bitPattern: -$0) } }
    return s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
  }
  guard let n = v as? NSNumber else { return nil }
  return n.int64Value < 0 ? UInt64(bitPattern: n.int64Value) : n.uint64Value
}

/// The vmcoreinfo ELF note found by scanning guest RAM (file offset = guest physical address
/// for guests below the PCI hole): its physical address and KEY=VALUE lines.
func vmcoreinfoInRAM(_ path: String, release: String) throws -> (address: UInt64, values: [String: String]) {
  let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
  // namesz 11, then descsz and type 0, then "VMCOREINFO\0" padded to 12, then the text.
  let marker = Data("VMCOREINFO\0\0OSRELEASE=\(release)\n".utf8)
  var from = data.startIndex
  while let r = data.range(of: marker, in: from..<data.endIndex) {
    let header = r.lowerBound - 12
    if header >= 0, data[header] == 11, data[header + 1] == 0, data[header + 8] == 0 {
      let descSize = Int(data[header + 4]) | Int(data[header + 5]) << 8 | Int(data[header + 6]) << 16
      let text = data[(r.lowerBound + 12)..<min(data.endIndex, r.lowerBound + 12 + descSize)]
      var values: [String: String] = [:]
      for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
        if let eq = line.firstIndex(of: "=") { values[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
      }
      return (UInt64(header), values)
    }
    from = r.upperBound
  }
  throw TestFailure("no vmcoreinfo note for \(release) in \(path)")
}

/// An address from kscope's JSON: "0x..." (or "-0x..." for a signed one such as phys_base),
/// as two's complement bits.
func jsonAddress(_ v: Any?) -> UInt64? {
  guard let s = v as? String else { return nil }
  let negative = s.hasPrefix("-")
  guard s.dropFirst(negative ? 1 : 0).hasPrefix("0x"), let m = UInt64(s.dropFirst(negative ? 3 : 2), radix: 16)
  else { return nil }
  return negative ? 0 &- m : m
}
