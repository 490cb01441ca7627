import ArgumentParser
import Foundation
import KscopeOS
import KscopeVM

/// `kscope bench`: evaluations that take minutes, run through this `kscope` as a user runs it.
struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Evaluations that take minutes (the clone evaluation); the micro-benchmarks are kscope-bench's.",
    subcommands: [BenchClonesCommand.self])
}

/// `kscope bench clones`: the clone evaluation.
struct BenchClonesCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clones",
    abstract: "Clone warm parents with each policy, run their workloads, and write a report (Markdown, JSON, plots).",
    discussion: """
      For each kernel and workload, a warm parent (with the agent) is snapshotted and colored \
      (host analysis merged with the agent's hints); then one clone per policy is started, its \
      workload run once, and its engine's and host's figures read (`vm stats`). Then K lazy \
      clones of one snapshot run together for the host-memory figure; with --remote, on-demand \
      and kaleidoscope clones take their pages from `kscope serve` behind an emulated 1 Gbit/s \
      link with 0.2 ms round trips. Writes OUT/report.json, OUT/report.md and, through \
      host/bench/plot_clones.py (matplotlib: host/setup.sh --bench), OUT/*.png. Use a release \
      build: swift build -c release && .build/release/kscope bench clones --remote
      """)

  @Option(help: "Kernel series, comma-separated.") var kernels = "6.1,6.12"
  @Option(help: "Workloads, comma-separated (web, olap).") var workloads = "web,olap"
  @Option(
    help: """
      Policies, comma-separated: eager, template, free-page-reporting (an eager clone of a \
      second parent that ran with a free-page-reporting balloon, so its snapshot left out what \
      the guest had freed), and vm clone --lazy's policies; the working-set ones use the \
      first-touch order recorded from the on-demand clone, which must come before them.
      """)
  var policies =
    "eager,free-page-reporting,template,on-demand,readahead-16,working-set,kaleidoscope,kaleidoscope+working-set"
  @Option(help: "Kaleidoscope clones run together for the host-memory figure (0: none).") var clones = 8
  @Option(help: "Web site size in MiB.") var siteMib = 240
  @Option(help: "OLAP database size in MiB.") var olapMib = 200
  @Option(help: "Web requests per clone.") var webRequests = 300
  @Flag(help: "Also clone on-demand and kaleidoscope over NBD behind an emulated 1 Gbit/s, 0.2 ms RTT link.")
  var remote = false
  @Option(name: .customLong("out"), help: "Report directory.") var outDirectory = "clones-report"
  @OptionGroup var out: OutputOptions

  func validate() throws {
    guard (0...32).contains(clones) else { throw ValidationError("--clones must be 0...32") }
    guard siteMib >= 1, olapMib >= 8, webRequests >= 1 else {
      throw ValidationError("--site-mib >= 1, --olap-mib >= 8, --web-requests >= 1")
    }
    guard kernelList.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isNumber || $0 == "." } }) else {
      throw ValidationError("--kernels takes series such as 6.1,6.12")
    }
    guard workloadList.allSatisfy({ ["web", "olap"].contains($0) }) else {
      throw ValidationError("--workloads takes web and/or olap")
    }
    guard !policyList.isEmpty else { throw ValidationError("--policies names at least one policy") }
    if let first = policyList.firstIndex(where: { $0.hasSuffix("working-set") }),
      !policyList[..<first].contains("on-demand")
    {
      throw ValidationError("--policies: the working-set policies need on-demand before them (its clone records the working set)")
    }
  }

  var kernelList: [String] { kernels.split(separator: ",").map(String.init) }
  var workloadList: [String] { workloads.split(separator: ",").map(String.init) }
  var policyList: [String] { policies.split(separator: ",").map(String.init) }

  func run() throws {
    let kscope = try Files.canonicalPath("/proc/self/exe")
    let report = try ClonesEvaluation.run(
      kscope: kscope, kernels: kernelList, workloads: workloadList, policies: policyList,
      clones: clones, siteMiB: siteMib, olapMiB: olapMib, webRequests: webRequests, remote: remote,
      out: outDirectory)
    if out.json {
      let e = JSONEncoder()
      e.keyEncodingStrategy = .convertToSnakeCase
      e.outputFormatting = [.prettyPrinted, .sortedKeys]
      FileHandle.standardOutput.write(try e.encode(report))
      FileHandle.standardOutput.write(Data("\n".utf8))
    } else {
      print("report: \(outDirectory)/report.md, plots: \(outDirectory)/*.png")
    }
  }
}

/// The clone evaluation behind `kscope bench clones`, driving this `kscope` binary's own
/// commands in child processes (with --json), as a user would.
enum ClonesEvaluation {
  struct Row: Codable {
    var kernel: String
    var workload: String
    var sizes: String
    var setting: String
    var policy: String
    var toVcpuMs: Double
    var qemuStartMs: Double
    var deviceStateMs: Double
    var identityMs: Double
    var engineMs: Double
    var toFirstAnswerMs: Double
    /// Web: requests per second; OLAP: seconds for one round of every query.
    var throughput: Double
    var digestMatches: Bool
    var demandFaults: Int
    var pagesFetched: Int
    var touchedPages: Int
    var waste: Int
    var holes: Int
    var footprintMiB: Double
    var bytesMoved: Int
    var faultP50Us: Double
  }
  struct Memory: Codable {
    var kernel: String
    var workload: String
    var clones: Int
    var parentRAMMiB: Double
    var cacheMiB: Double
    var privateMiB: Double
    var perCloneMiB: Double
    var boundMiB: Double
    var allAnswersMatch: Bool
  }
  struct Report: Codable {
    var date: String
    var machine: String
    var rows: [Row]
    var memory: [Memory]
  }

  static func run(
    kscope: String, kernels: [String], workloads: [String], policies: [String], clones: Int,
    siteMiB: Int, olapMiB: Int, webRequests: Int, remote: Bool, out: String
  ) throws -> Report {
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    var report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: machineLine(), rows: [], memory: [])
    for kernel in kernels {
      for workload in workloads {
        let sizes = workload == "web" ? "site \(siteMiB) MiB (Zipf), \(webRequests) requests" : "database \(olapMiB) MiB, 1 round of every query"
        let run = Run(kscope: kscope, kernel: kernel, workload: workload, siteMiB: siteMiB, olapMiB: olapMiB, webRequests: webRequests)
        defer { run.cleanUp() }
        try run.prepareParent()
        if policies.contains("free-page-reporting") { try run.prepareReportingParent() }
        for policy in policies {
          progress("\(kernel) \(workload): clone with \(policy)")
          report.rows.append(try run.measure(policy: policy, sizes: sizes, setting: "local", from: nil))
        }
        if remote {
          let (uri, server) = try run.serve()
          defer { server.terminate(); server.waitUntilExit() }
          for policy in ["on-demand", "kaleidoscope"] {
            progress("\(kernel) \(workload): remote clone with \(policy)")
            report.rows.append(try run.measure(policy: policy, sizes: sizes, setting: "remote (1 Gbit/s, 0.2 ms RTT)", from: uri))
          }
        }
        if clones > 0 {
          progress("\(kernel) \(workload): \(clones) kaleidoscope clones together")
          report.memory.append(try run.many(clones))
        }
        try write(report, to: out)
      }
    }
    try write(report, to: out)
    let plot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("host/bench/plot_clones.py").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", plot, out + "/report.json", out]
    try p.run()
    p.waitUntilExit()
    if p.terminationStatus != 0 {
      throw CommandFailure("plotting failed (pip install matplotlib, or host/setup.sh --bench); the tables are in \(out)/report.md")
    }
    return report
  }

  static func progress(_ s: String) { FileHandle.standardError.write(Data("kscope bench: \(s)\n".utf8)) }

  static func machineLine() -> String {
    let cpus = ProcessInfo.processInfo.activeProcessorCount
    let mem = ProcessInfo.processInfo.physicalMemory >> 30
    return "\(cpus) CPUs, \(mem) GiB, QEMU TCG (no KVM), 512 MiB guests, 1 vCPU"
  }

  static func write(_ r: Report, to dir: String) throws {
    let e = JSONEncoder()
    e.keyEncodingStrategy = .convertToSnakeCase
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    try e.encode(r).write(to: URL(fileURLWithPath: dir + "/report.json"), options: .atomic)
    try markdown(r).write(toFile: dir + "/report.md", atomically: true, encoding: .utf8)
  }

  /// One table per kernel, workload and setting, with the sizes in its heading.
  static func markdown(_ r: Report) -> String {
    func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
    var s = "# Clone evaluation\n\n\(r.date), \(r.machine). Reproduce: `swift build -c release && .build/release/kscope bench clones --remote`.\n\n"
    s += "Touched pages are the clone's resident pages of its RAM mapping (guest accesses plus the kernel's fault-around); waste = fetched - touched (at least 0). Footprint: the clone's private (copy-on-write) pages plus the pages it maps from shared memory (cache file, page cache) divided by the clones sharing them.\n\n"
    var groups: [String: [Row]] = [:]
    var order: [String] = []
    for row in r.rows {
      let k = "\(row.kernel) \(row.workload), \(row.setting): \(row.sizes)"
      if groups[k] == nil { order.append(k) }
      groups[k, default: []].append(row)
    }
    for k in order {
      let rows = groups[k]!
      let web = rows.first?.workload == "web"
      s += "## \(k)\n\n"
      s += "| policy | to vCPU running ms (QEMU, device state, engine) | first answer ms | \(web ? "req/s" : "round s") | answers = parent | demand faults | fault p50 µs | fetched | touched | waste | holes | footprint MiB | bytes moved MiB |\n"
      s += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
      for x in rows {
        s += "| \(x.policy) | \(f(x.toVcpuMs, 0)) (\(f(x.qemuStartMs, 0)), \(f(x.deviceStateMs, 0)), \(f(x.engineMs, 0))) | \(f(x.toFirstAnswerMs, 0)) | \(f(x.throughput, web ? 1 : 2)) | \(x.digestMatches ? "yes" : "NO") | \(x.demandFaults) | \(f(x.faultP50Us)) | \(x.pagesFetched) | \(x.touchedPages) | \(x.waste) | \(x.holes) | \(f(x.footprintMiB)) | \(f(Double(x.bytesMoved) / 1_048_576)) |\n"
      }
      s += "\n"
    }
    if !r.memory.isEmpty {
      s += "## Many clones of one parent (kaleidoscope, local)\n\n| kernel workload | clones | parent RAM MiB | shared cache MiB | private MiB | per added clone MiB | bound (parent + K x 25%) MiB | answers = parent |\n|---|---|---|---|---|---|---|---|\n"
      for m in r.memory {
        s += "| \(m.kernel) \(m.workload) | \(m.clones) | \(f(m.parentRAMMiB, 0)) | \(f(m.cacheMiB)) | \(f(m.privateMiB)) | \(f(m.perCloneMiB)) | \(f(m.boundMiB, 0)) | \(m.allAnswersMatch ? "yes" : "NO") |\n"
      }
    }
    return s
  }

  /// One parent and its clones, in a state directory of its own.
  final class Run {
    let kscope: String
    let kernel: String
    let workload: String
    let siteMiB: Int
    let olapMiB: Int
    let webRequests: Int
    let state: String
    var snapshot: String { state + "/snap" }
    var engines: String { state + "/engines" }
    var parentDigest = ""
    var ramMiB = 512.0

    init(kscope: String, kernel: String, workload: String, siteMiB: Int, olapMiB: Int, webRequests: Int) {
      self.kscope = kscope
      self.kernel = kernel
      self.workload = workload
      self.siteMiB = siteMiB
      self.olapMiB = olapMiB
      self.webRequests = webRequests
      state = "/dev/shm/kscope-bench-clones-\(ProcessUsage.id)-\(kernel)-\(workload)"
    }

    /// Runs `kscope ARGS --json` (vm and workload commands get this run's state directory).
    func tool(_ args: [String]) throws -> [String: Any] {
      let state = ["vm", "workload"].contains(args.first ?? "") ? ["--state-dir", self.state] : []
      guard let j = try jsonObjectOfCommand(kscope, args + state + ["--json"]) else {
        throw CommandFailure("kscope \(args.joined(separator: " ")) failed")
      }
      return j
    }

    func cleanUp() {
      if let list = try? tool(["vm", "list"]), let vms = list["vms"] as? [[String: Any]] {
        for v in vms { _ = try? tool(["vm", "stop", v["name"] as? String ?? ""]) }
      }
      try? FileManager.default.removeItem(atPath: state)
    }

    func prepareParent() throws {
      try FileManager.default.createDirectory(atPath: engines, withIntermediateDirectories: true)
      progress("\(kernel) \(workload): booting the parent (building its image if needed)")
      _ = try tool([
        "vm", "start", "parent", "--kernel", kernel, "--workload", workload, "--site-size", String(siteMiB),
        "--olap-size", String(olapMiB), "--memory", "512M", "--timeout", "600",
      ])
      progress("\(kernel) \(workload): warming the parent")
      parentDigest = try load("parent").digest
      progress("\(kernel) \(workload): snapshot, colored into its map.kcm")
      _ = try tool(["vm", "snapshot", "parent", "-o", snapshot])
    }

    /// The baseline a modern user picks to avoid copying free pages: a second parent with a
    /// free-page-reporting balloon, warmed the same way, whose snapshot leaves out the 2 MiB
    /// blocks its guest reported free.
    var reportingSnapshot: String { state + "/snap-fpr" }

    func prepareReportingParent() throws {
      progress("\(kernel) \(workload): booting a free-page-reporting parent")
      _ = try tool([
        "vm", "start", "fpr-parent", "--kernel", kernel, "--workload", workload, "--site-size", String(siteMiB),
        "--olap-size", String(olapMiB), "--memory", "512M", "--timeout", "600", "--free-page-reporting",
      ])
      progress("\(kernel) \(workload): warming it")
      guard try load("fpr-parent").digest == parentDigest else {
        throw CommandFailure("the free-page-reporting parent answered differently from the parent")
      }
      // Free blocks are reported about 2 s after they gather; give them time to leave the file.
      Thread.sleep(forTimeInterval: 5)
      _ = try tool(["vm", "snapshot", "fpr-parent", "-o", reportingSnapshot, "--no-color"])
      _ = try tool(["vm", "stop", "fpr-parent"])
    }

    /// Runs the workload once: (throughput or round time, digest).
    func load(_ vm: String) throws -> (value: Double, digest: String) {
      if workload == "web" {
        let j = try tool(["workload", "web", "--vm", vm, "--requests", String(webRequests)])
        return (j["requests_per_second"] as? Double ?? 0, j["digest"] as? String ?? "")
      }
      let j = try tool(["workload", "olap", "--vm", vm])
      return (j["seconds"] as? Double ?? 0, j["digest"] as? String ?? "")
    }

    /// The first-touch order of the local on-demand clone (REAP-style recording), which the
    /// working-set policies' clones fetch first.
    var workingSet: String { state + "/working-set.trace" }

    func cloneArgs(policy: String, name: String, from: String?) -> [String] {
      var a = ["vm", "clone", snapshot, "--name", name]
      switch policy {
      case "eager": break
      case "free-page-reporting": a[2] = reportingSnapshot
      case "template": a.append("--template")
      default:
        a += ["--lazy", "--policy", policy, "--cache-dir", engines]
        if policy.hasSuffix("working-set") { a += ["--working-set", workingSet] }
        if let from { a += ["--from", from] }
      }
      return a
    }

    func measure(policy: String, sizes: String, setting: String, from: String?) throws -> Row {
      let name = "c-" + policy.replacingOccurrences(of: "+", with: "-")
      let c = try tool(cloneArgs(policy: policy, name: name, from: from))
      let records = policy == "on-demand" && from == nil
      defer { if !records { _ = try? tool(["vm", "stop", name]) } }
      let t = c["timings_s"] as? [String: Double] ?? [:]
      let result = try load(name)
      let st = try tool(["vm", "stats", name])
      let host = st["host_memory"] as? [String: Any] ?? [:]
      let engine = st["engine"] as? [String: Any] ?? [:]
      let clone = st["clone"] as? [String: Any] ?? [:]
      let rss = (host["rss_kib"] as? Int ?? 0) / 4
      let anon = (host["anonymous_kib"] as? Int ?? 0) / 4
      var fetched = engine["pages_fetched"] as? Int ?? 0
      var moved = fetched * 4096
      var footprint = Double(anon + (engine["cache_resident_pages"] as? Int ?? 0)) * 4096
      if policy == "eager" || policy == "free-page-reporting" {
        // The full copy: what the snapshot's RAM file holds (holes stay holes).
        let copied = SparseFile.allocatedBytes(state + "/vms/\(name)/ram")
        fetched = Int(copied / 4096)
        moved = Int(copied)
        footprint = Double(copied + UInt64(anon) * 4096)
      } else if policy == "template" {
        // Page cache of the snapshot's file: read from local memory, nothing moved.
        fetched = rss - anon
        moved = 0
        footprint = Double(rss) * 4096
      }
      let latency = clone["fault_latency_us"] as? [String: Any] ?? [:]
      if records { _ = try tool(["vm", "stop", name, "--working-set", workingSet]) }
      return Row(
        kernel: kernel, workload: workload, sizes: sizes, setting: setting, policy: policy,
        toVcpuMs: (t["to_vcpu_running"] ?? 0) * 1000, qemuStartMs: (t["qemu_start"] ?? 0) * 1000,
        deviceStateMs: (t["device_state"] ?? 0) * 1000, identityMs: (t["identity"] ?? 0) * 1000,
        engineMs: (t["engine"] ?? 0) * 1000, toFirstAnswerMs: (t["to_first_answer"] ?? 0) * 1000,
        throughput: result.value, digestMatches: result.digest == parentDigest,
        demandFaults: clone["demand_faults"] as? Int ?? 0, pagesFetched: fetched, touchedPages: rss,
        waste: max(0, fetched - rss), holes: engine["holes"] as? Int ?? 0,
        footprintMiB: footprint / 1_048_576, bytesMoved: moved,
        faultP50Us: latency["p50"] as? Double ?? 0)
    }

    /// `kscope serve` on a free port behind the emulated link (rate 1 Gbit/s, 0.1 ms per read
    /// each way).
    func serve() throws -> (String, Process) {
      let port = 20000 + Int(ProcessUsage.id % 20000)
      let p = Process()
      p.executableURL = URL(fileURLWithPath: kscope)
      // 16 threads per connection: the delay filter sleeps in the thread that serves a request,
      // so with one thread a link's requests would be answered one at a time, and a miss would
      // wait behind the prefetch requests queued before it; a real link carries them together.
      p.arguments = [
        "serve", snapshot, "--listen", "127.0.0.1", "--port", String(port), "--rate", "1G", "--delay", "0.1",
        "--threads", "16",
      ]
      p.standardOutput = FileHandle.nullDevice
      try p.run()
      let deadline = Date(timeIntervalSinceNow: 10)
      while Date() < deadline {
        if StreamSocket.tcpConnects(host: "127.0.0.1", port: port) { return ("nbd://127.0.0.1:\(port)/", p) }
        Thread.sleep(forTimeInterval: 0.05)
      }
      p.terminate()
      throw CommandFailure("kscope serve did not listen on \(port)")
    }

    /// K kaleidoscope clones at once: the engine's shared cache plus each clone's private pages.
    func many(_ k: Int) throws -> Memory {
      var names: [String] = []
      defer { for n in names { _ = try? tool(["vm", "stop", n]) } }
      var match = true
      for n in 0..<k {
        let name = "m\(n)"
        _ = try tool(cloneArgs(policy: "kaleidoscope", name: name, from: nil))
        names.append(name)
        match = try load(name).digest == parentDigest && match
      }
      var anon = 0
      var cache = 0
      for n in names {
        let st = try tool(["vm", "stats", n])
        anon += ((st["host_memory"] as? [String: Any])?["anonymous_kib"] as? Int ?? 0) / 4
        cache = (st["engine"] as? [String: Any])?["cache_resident_pages"] as? Int ?? cache
      }
      let cacheMiB = Double(cache) / 256
      let privateMiB = Double(anon) / 256
      return Memory(
        kernel: kernel, workload: workload, clones: k, parentRAMMiB: ramMiB, cacheMiB: cacheMiB,
        privateMiB: privateMiB, perCloneMiB: (cacheMiB + privateMiB) / Double(max(k, 1)),
        boundMiB: ramMiB + Double(k) * 0.25 * ramMiB, allAnswersMatch: match)
    }
  }
}

