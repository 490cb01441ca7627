import KscopeCore
import KscopeOS

/// The guest agent's engine: gathers hints (kernel symbols once, then the frame table and the
/// page cache on every refresh), fits them into the region and publishes them.
public struct AgentOptions: Sendable {
  /// A file to write instead of the ivshmem BAR (created with `regionSize` bytes if missing).
  public var out: String?
  public var regionSize = 4 << 20
  public var intervalNanoseconds: UInt64 = 1_000_000_000
  public var once = false
  /// Page-cache roots; nil for the defaults (/ and every block-device mount).
  public var roots: [String]?
  public var frames = true
  public var files = true
  public var fileFrames = true
  /// Publish the kernel's BTF (/sys/kernel/btf/vmlinux), compressed.
  public var btf = true
  /// Where the BTF is read from (tests point it at a file).
  public var btfPath = KernelBTF.path
  public var maxFiles = 100_000
  /// The share of one CPU the agent may use on average (refreshes are spaced out to stay
  /// under it); 0 disables the limit.
  public var cpuBudget = 0.01
  /// Write damaged regions instead of hints (the host's robustness test), from this seed.
  public var garbageSeed: UInt64?
  public var verbose = false
  public init() {}
}

/// What one refresh cost and produced (for the log and the measurements).
public struct RefreshReport: Sendable {
  public var generation: UInt64
  public var cpuNanoseconds: UInt64
  public var wallNanoseconds: UInt64
  public var usedBytes: Int
  public var frames: UInt64
  public var files: Int
  public var partial: Bool
  public var notes: [String]
  public var framesCPUNanoseconds: UInt64 = 0
  public var filesCPUNanoseconds: UInt64 = 0
}

public final class Agent {
  public let options: AgentOptions
  let region: SharedRegion
  let pageSize: Int
  var kernel: KernelSymbolProbe
  let release: String
  let buildID: [UInt8]
  /// The kernel's BTF, compressed once at start, and what to say about it in the metadata.
  let btf: PublishedBTF?
  let btfNote: (key: String, value: String)?
  var generation: UInt64
  var lastNotes: [String] = []
  var garbage: SplitMix64?
  var garbageRound = 0
  var lastRefreshCPU: UInt64 = 0
  /// CPU spent on the frame table and on the page-cache scan in the last refresh.
  var lastPhases: (frames: UInt64, files: UInt64) = (0, 0)

  /// Opens the region (the ivshmem BAR, or `options.out`) and learns the kernel symbols.
  public init(options: AgentOptions) throws(AgentError) {
    self.options = options
    if let out = options.out {
      region = try SharedRegion(path: out, createSize: options.regionSize)
    } else {
      guard let dev = IvshmemDevice.find() else {
        throw AgentError(
          "no ivshmem device (PCI 1af4:1110) under /sys/bus/pci/devices; give --out FILE to write a file instead")
      }
      try IvshmemDevice.enable(dev)
      region = try SharedRegion(path: dev + "/resource2")
    }
    pageSize = SystemInfo.pageSize
    kernel = KernelSymbolProbe()
    release = SystemInfo.kernelRelease()
    buildID = Self.buildID()
    if options.btf {
      let t0 = ProcessUsage.cpuNanoseconds()
      switch KernelBTF.read(options.btfPath) {
      case .published(let b):
        btf = b
        let ms = (ProcessUsage.cpuNanoseconds() - t0) / 1_000_000
        btfNote = ("source.btf", "\(options.btfPath) (\(b.size) bytes, zstd \(b.data.count), \(ms) ms)")
      case .absent:
        btf = nil
        btfNote = ("source.btf", "none (\(options.btfPath) is missing: a kernel without CONFIG_DEBUG_INFO_BTF)")
      case .failed(let why):
        btf = nil
        btfNote = ("problem.btf", why)
      }
    } else {
      btf = nil
      btfNote = nil
    }
    // Continue after whatever generation is in the region (a restarted agent must not make
    // the host think nothing changed), always even.
    let g = region.generation
    generation = g < UInt64.max - 4 ? (g + 1) & ~1 : 0
    garbage = options.garbageSeed.map { SplitMix64(seed: $0) }
    // The seed also picks the first kind of damage, so one-shot runs cover every kind.
    garbageRound = Int((options.garbageSeed ?? 0) % 4)
  }

  public var regionPath: String { region.path }
  public var regionSize: Int { region.size }
  public var kernelProblems: [String] { kernel.problems }

  static func buildID() -> [UInt8] {
    guard let notes = try? Files.read("/sys/kernel/notes", limit: 1 << 16),
      let hex = gnuBuildID(inNotes: notes)
    else { return [] }
    var out: [UInt8] = []
    var it = hex.utf8.makeIterator()
    while let a = it.next(), let b = it.next() {
      guard let v = UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16) else { return [] }
      out.append(v)
    }
    return out
  }

  /// Gathers everything and publishes one generation.
  public func refresh() throws(AgentError) -> RefreshReport {
    let cpu0 = ProcessUsage.cpuNanoseconds()
    let wall0 = MonotonicClock.nanoseconds()
    generation &+= 2
    if garbage != nil { return try refreshGarbage(cpu0, wall0) }
    let content = gather()
    let encoded: EncodedHints
    do {
      encoded = try HintFormat.encode(content, regionSize: region.size, generation: generation)
    } catch { throw AgentError("cannot fit hints into \(region.size) bytes: \(error)") }
    region.publish(encoded.bytes)
    let cpu = ProcessUsage.cpuNanoseconds() - cpu0
    lastRefreshCPU = cpu
    return RefreshReport(
      generation: generation, cpuNanoseconds: cpu, wallNanoseconds: MonotonicClock.nanoseconds() - wall0,
      usedBytes: encoded.bytes.count, frames: content.frames?.frameCount ?? 0,
      files: content.files.count, partial: encoded.partial, notes: encoded.notes + problems(content),
      framesCPUNanoseconds: lastPhases.frames, filesCPUNanoseconds: lastPhases.files)
  }

  private func problems(_ c: HintContent) -> [String] {
    c.metadata.filter { $0.key.hasPrefix("problem.") }.map { "\($0.key): \($0.value)" }
  }

  /// The hint content of this moment. The frame table is read before the page cache is
  /// scanned, so the agent's own short-lived file mappings do not show in it.
  func gather() -> HintContent {
    var meta: [(key: String, value: String)] = [("agent.version", "1")]
    var incomplete = false
    for (k, v) in kernel.sources { meta.append(("source.\(k)", v)) }
    for (i, p) in kernel.problems.enumerated() { meta.append(("problem.kernel.\(i)", p)) }
    if !kernel.problems.isEmpty { incomplete = true }
    if let btfNote {
      meta.append(btfNote)
      if btfNote.key.hasPrefix("problem.") { incomplete = true }
    }

    var frames: FrameClassTable? = nil
    if options.frames {
      do {
        let t0 = ProcessUsage.cpuNanoseconds()
        let r = try FrameTableScanner().scan(pageSize: UInt64(pageSize))
        lastPhases.frames = ProcessUsage.cpuNanoseconds() - t0
        frames = r.table
        meta.append(("source.frames", "kpageflags" + (r.usedCounts ? "+kpagecount" : "") + (r.usedResourceMap ? "+iomem" : "")))
      } catch {
        meta.append(("problem.frames", error.description))
        incomplete = true
      }
    }
    var files: [CachedFile] = []
    if options.files {
      let roots = options.roots ?? PageCacheScanner.defaultRoots()
      var scanner = PageCacheScanner(roots: roots, wantFrames: options.fileFrames, maxFiles: options.maxFiles)
      scanner.excluded = region.identity
      scanner.keepBytes = region.size
      let t0 = ProcessUsage.cpuNanoseconds()
      let r = scanner.scan(pageSize: pageSize)
      lastPhases.files = ProcessUsage.cpuNanoseconds() - t0
      files = r.files
      meta.append(("files.roots", roots.joined(separator: ",")))
      meta.append(("files.visited", String(r.filesVisited)))
      if r.dropped > 0 {
        meta.append(("partial.files_dropped", "\(r.dropped) less resident files left out: more than the region holds"))
        incomplete = true
      }
      if r.hitFileLimit {
        meta.append(("problem.files", "stopped after \(options.maxFiles) files (--max-files)"))
        incomplete = true
      }
    }
    meta.append(("refresh.previous_cpu_us", String(lastRefreshCPU / 1000)))
    return HintContent(
      kernelRelease: release, buildID: buildID, published: SystemInfo.unixTime(),
      pageSize: UInt32(pageSize), kernel: kernel.hints, frames: frames, files: files,
      metadata: meta, incomplete: incomplete, btf: btf)
  }

  /// The garbage mode: a different kind of damage each round, so the host meets all of them.
  private func refreshGarbage(_ cpu0: UInt64, _ wall0: UInt64) throws(AgentError) -> RefreshReport {
    var g = garbage!
    defer { garbage = g }
    let size = region.size
    let kind = garbageRound % 4
    garbageRound += 1
    var note = ""
    switch kind {
    case 0:
      var b = [UInt8](repeating: 0, count: size)
      for i in stride(from: 0, to: size, by: 8) {
        let v = g.next()
        for j in 0..<8 { b[i + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) }
      }
      region.writeRaw(b)
      note = "random bytes over the whole region"
    case 1, 2:
      let good = try? HintFormat.encode(gather(), regionSize: size, generation: generation)
      var b = Array(HintDamage.mutate(good?.bytes ?? [], using: &g).prefix(size))
      if kind == 2 { b = HintDamage.reseal(b) }
      // A mutation that missed everything the reader checks (e.g. bytes past the used size)
      // would still be valid hints: break the checksum so this round is garbage for sure.
      var whole = b + [UInt8](repeating: 0, count: size - b.count)
      if (try? HintFormat.decode(whole)) != nil {
        whole[HintFormat.checksumOffset] ^= 0xFF
      }
      region.writeRaw(whole)
      note = kind == 1 ? "mutated hints" : "mutated hints behind a valid checksum"
    default:
      // Valid hints whose generation is odd, written in one go: a reader never sees the valid
      // region in between.
      var b = (try? HintFormat.encode(gather(), regionSize: size, generation: generation))?.bytes ?? []
      b += [UInt8](repeating: 0, count: max(0, size - b.count))
      for j in 0..<8 { b[HintFormat.generationOffset + j] = UInt8(truncatingIfNeeded: (generation | 1) >> (8 * UInt64(j))) }
      region.writeRaw(b)
      note = "a writer stuck mid-publication (odd generation)"
    }
    return RefreshReport(
      generation: generation, cpuNanoseconds: ProcessUsage.cpuNanoseconds() - cpu0,
      wallNanoseconds: MonotonicClock.nanoseconds() - wall0, usedBytes: size, frames: 0, files: 0,
      partial: true, notes: ["garbage: " + note])
  }

  /// Refreshes on the interval and on SIGUSR1 until SIGTERM/SIGINT/SIGHUP. Refreshes are
  /// spaced so that the agent's average CPU stays under the budget: after a refresh that cost
  /// C seconds of CPU, the next one waits at least C / budget (a 40 ms refresh at 1% waits 4 s).
  /// A SIGUSR1 refreshes at once regardless.
  public func run(log: (String) -> Void) {
    while true {
      let report: RefreshReport
      do { report = try refresh() } catch {
        log("refresh failed: \(error)")
        if options.once { return }
        if SignalWait.wait(nanoseconds: options.intervalNanoseconds) == .stop { return }
        continue
      }
      if options.verbose || report.notes != lastNotes {
        log(Self.describe(report))
        lastNotes = report.notes
      }
      if options.once { return }
      var wait = options.intervalNanoseconds
      if options.cpuBudget > 0 {
        let spaced = UInt64(Double(report.cpuNanoseconds) / options.cpuBudget)
        if spaced > report.wallNanoseconds { wait = max(wait, spaced - report.wallNanoseconds) }
      }
      switch SignalWait.wait(nanoseconds: wait) {
      case .stop: return
      case .refresh, .timeout: continue
      }
    }
  }

  public static func describe(_ r: RefreshReport) -> String {
    var s = "generation \(r.generation): \(r.frames) frames, \(r.files) files, \(r.usedBytes) bytes"
    s += ", cpu \(r.cpuNanoseconds / 1000) us (frames \(r.framesCPUNanoseconds / 1000), files \(r.filesCPUNanoseconds / 1000))"
    s += ", wall \(r.wallNanoseconds / 1000) us"
    s += ", rss \(SystemInfo.currentRSSKiB() ?? 0) KiB (peak \(ProcessUsage.peakRSSKiB()) KiB)"
    if r.partial { s += ", partial" }
    for n in r.notes { s += "; " + n }
    return s
  }
}
