import KscopeCore
import KscopeSnapshot
import KscopeLayout
import KscopeOS
import Logging


public struct AnalyzerOptions: Sendable {
  /// Also color frames whose content is all zeros `zero` (reads every non-free frame).
  public var zeroScan = false
  /// Walk every process's page tables (user code, mapped/executable flags, owners).
  public var walkProcesses = true
  /// The guest agent's hints, already validated by the hint reader; merged after the walk.
  public var hints: HintSet? = nil
  public init(zeroScan: Bool = false, walkProcesses: Bool = true, hints: HintSet? = nil) {
    self.zeroScan = zeroScan
    self.walkProcesses = walkProcesses
    self.hints = hints
  }
}

/// A process seen in the task list.
public struct GuestProcess: Sendable, Hashable {
  public var pid: Int32
  public var command: String
  public var mappedFrames: Int
}

/// The result of coloring a guest: the map and what was learned on the way.
public struct Analysis: Sendable {
  public var map: ColorMap
  public var location: KernelLocation
  public var processes: [GuestProcess]
  /// What looked wrong in guest data (each a count); such frames are `unknown` + `anomaly`.
  public var anomalies: [String: Int]
  /// Wall seconds per phase.
  public var phases: [(String, Double)]
  public var sectionsWalked: Int
  /// What merging the agent's hints did, when there were hints.
  public var hints: HintMergeReport? = nil
}

/// Colors a guest's physical memory from outside: the host analyzer.
public enum Analyzer {
  /// Colors `memory` in phases, each its own function: kernel location, the section walk with
  /// the struct page rules, page-cache identity, the process walk, the zero scan, the header,
  /// the hint merge. `phases` in the result times each.
  public static func analyze(
    memory: any PhysicalMemory, layout: KernelLayout, options: AnalyzerOptions = AnalyzerOptions(),
    created: Int64 = 0, logger: Logger = Logger(label: "kscope.analyzer")
  ) throws(AnalyzerError) -> Analysis {
    // The frame table is sized by the end of RAM: regions at 2^50 (a snapshot's manifest
    // refuses them; memory built by other means may not) would ask for 2^38 entries.
    guard memory.end / GuestKernelView.pageSize <= Analyzer.maxFrames else {
      throw .badImage(
        "guest RAM ends at 0x\(String(memory.end, radix: 16)): more than \(Analyzer.maxFrames >> 18) GiB of frames")
    }
    var clock = PhaseClock()
    let view = try GuestKernelView.locate(
      memory: memory, layout: layout, hintedNote: options.hints?.kernel.vmcoreinfo?.address.rawValue)
    let location = view.location
    logger.debug("kernel: slide \(hex64(location.slide)), phys_base \(hex64(location.physBase)), 5-level \(location.fiveLevel)")
    clock.lap("locate kernel")

    var frames = FrameTable(frameCount: Int(view.frameCount))
    let walk = try walkSections(view, &frames)
    logger.debug("walked \(walk.walkedFrames) struct pages in \(walk.sectionsWalked) sections")
    clock.lap("walk struct pages")

    let extents = identifyPageCache(walk.cacheFrames, space: view.space, layout: layout, &frames)
    clock.lap("resolve page cache")

    var processes: [GuestProcess] = []
    if options.walkProcesses {
      processes = walkProcesses(space: view.space, layout: layout, &frames)
      clock.lap("walk processes")
    }

    if options.zeroScan {
      let zeroed = scanZeros(memory, &frames)
      logger.debug("zero scan: \(zeroed) frames")
      clock.lap("zero scan")
    }

    var map = ColorMap(
      header: header(location.vmcoreinfo, zeroScan: options.zeroScan, created: created), entries: frames.entries,
      extents: extents)
    clock.lap("build map")
    var hintReport: HintMergeReport? = nil
    if let hints = options.hints {
      let (merged, report) = HintMerge.merge(map, hints: hints)
      map = merged
      hintReport = report
      clock.lap("merge hints")
    }
    return Analysis(
      map: map, location: location, processes: processes, anomalies: frames.anomalies, phases: clock.phases,
      sectionsWalked: walk.sectionsWalked, hints: hintReport)
  }
}

extension Analyzer {
  /// 256 GiB of 4 KiB frames (a 512 MiB table); kscope's guests have at most 64 GiB of RAM.
  public static let maxFrames: UInt64 = 1 << 26
}

/// Wall seconds per phase, in order.
struct PhaseClock {
  var phases: [(String, Double)] = []
  private var last = monotonicSeconds()

  mutating func lap(_ name: String) {
    let now = monotonicSeconds()
    phases.append((name, now - last))
    last = now
  }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double { MonotonicClock.seconds() }
