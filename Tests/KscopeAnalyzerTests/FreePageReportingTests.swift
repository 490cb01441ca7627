import Foundation
import KscopeOS
import KscopeTestSupport
import KscopeVM
import Testing

/// A parent with virtio-balloon free page reporting (issue 13's "modern user" baseline), and
/// the discard trap: QEMU 7.2 answers a clone's free page reports by punching holes in the RAM
/// *file* even when the clone maps it privately, which would zero those pages under every
/// clone of the template and in the engine's cache. The shim keeps the punches off the file.
/// Needs QEMU and the cached 6.1 kernel (host/setup.sh); fails, never skips, without them.
@Suite(.serialized) struct FreePageReportingTests {
  @Test func reportingParentsShrinkAndTheirClonesLeaveTheTemplateWhole() throws {
    let kscope = try kscopeBinary()
    let state = "/dev/shm/kscope-fpr-test-\(ProcessUsage.id)"
    let engines = state + "/engines"
    try FileManager.default.createDirectory(atPath: engines, withIntermediateDirectories: true)
    let vms = VMManager(stateDir: state)
    defer {
      let leftovers = vms.stopAll()
      #expect(leftovers.isEmpty, "\(leftovers)")
      try? FileManager.default.removeItem(atPath: state)
    }
    func tool(_ args: [String]) throws -> [String: Any] {
      let r = try runProgram(kscope, args + ["--state-dir", state, "--json"])
      #expect(r.status == 0, "kscope \(args.joined(separator: " ")): \(r.stderr)")
      return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
    }
    /// The guest fills 96 MiB of tmpfs and frees it: 2 MiB blocks go back to the buddy
    /// allocator, which reports them to the host about 2 s later.
    func churn(_ name: String) throws {
      let r = try vms.exec(
        name: name, command: "dd if=/dev/zero of=/tmp/churn bs=1M count=96 2>/dev/null; rm /tmp/churn; sleep 4; echo done")
      #expect(r.text.contains("done"), "\(name): \(r.text)")
    }

    _ = try tool([
      "vm", "start", "parent", "--kernel", "6.1", "--workload", "web", "--memory", "512M", "--no-agent",
      "--free-page-reporting",
    ])
    let ram = state + "/vms/parent/ram"
    try churn("parent")
    // The parent's reports reached its RAM file: what the guest freed left the file.
    let kept = SparseFile.allocatedBytes(ram)
    let churned = try vms.exec(name: "parent", command: "dd if=/dev/zero of=/tmp/churn bs=1M count=96 2>/dev/null; echo filled")
    #expect(churned.text.contains("filled"))
    let filled = SparseFile.allocatedBytes(ram)
    _ = try vms.exec(name: "parent", command: "rm /tmp/churn; sleep 4")
    let reported = SparseFile.allocatedBytes(ram)
    #expect(filled >= kept + (64 << 20), "filling 96 MiB grew the RAM file from \(kept >> 20) to only \(filled >> 20) MiB")
    #expect(reported + (64 << 20) <= filled, "freeing 96 MiB left the RAM file at \(reported >> 20) of \(filled >> 20) MiB: no free page reports")

    let before = try vms.runWeb(name: "parent", requests: 40, seed: 3).digest
    let snap = state + "/snap"
    _ = try tool(["vm", "snapshot", "parent", "-o", snap])
    let ramBefore = try sha256(snap + "/ram")

    // A template clone and a lazy one carry the balloon (the device state needs it) and report
    // what they free; the shim keeps every punch off the file they share.
    _ = try tool(["vm", "clone", snap, "--template", "--name", "t"])
    _ = try tool(["vm", "clone", snap, "--lazy", "--cache-dir", engines, "--name", "l"])
    let cache = try #require(try vms.record("l").config.ramBacking?.file, "l has no cache file")
    let cacheBefore = SparseFile.allocatedBytes(cache)
    for name in ["t", "l"] {
      try churn(name)
      #expect(try vms.runWeb(name: name, requests: 40, seed: 3).digest == before, "\(name) answered differently")
      let log = (try? String(contentsOfFile: state + "/vms/\(name)/qemu.log", encoding: .utf8)) ?? ""
      #expect(log.contains("kscope-shim: a discard of guest RAM was kept off the shared RAM file"), "\(name)'s qemu.log: \(log)")
    }
    #expect(SparseFile.allocatedBytes(cache) >= cacheBefore, "the engine's cache file lost pages to a clone's discard")
    // A clone started after the others' discards still answers as the parent did.
    _ = try tool(["vm", "clone", snap, "--lazy", "--cache-dir", engines, "--name", "l2"])
    #expect(try vms.runWeb(name: "l2", requests: 40, seed: 3).digest == before, "l2 answered differently")
    for name in ["t", "l", "l2"] { try vms.stop(name: name) }
    #expect(try sha256(snap + "/ram") == ramBefore, "the template's RAM file changed under its clones")
  }

  func sha256(_ path: String) throws -> String {
    let r = try runProgram("/usr/bin/sha256sum", [path])
    #expect(r.status == 0, "sha256sum \(path): \(r.stderr)")
    return String(r.stdout.prefix(64))
  }
}
