import KscopeCore
import KscopeSnapshot
import KscopeLayout
import Logging

#if canImport(Glibc)
  import Glibc
#endif

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
  public static func analyze(
    memory: any PhysicalMemory, layout: KernelLayout, options: AnalyzerOptions = AnalyzerOptions(),
    created: Int64 = 0, logger: Logger = Logger(label: "kscope.analyzer")
  ) throws(AnalyzerError) -> Analysis {
    var phases: [(String, Double)] = []
    var clock = monotonicSeconds()
    func phase(_ name: String) {
      let now = monotonicSeconds()
      phases.append((name, now - clock))
      clock = now
    }
    let location = try KernelLocator.locate(
      in: memory, layout: layout, hintedNote: options.hints?.kernel.vmcoreinfo?.address.rawValue)
    let space = KernelAddressSpace(memory: memory, location: location)
    let pages: PageStructLayout
    do { pages = try PageStructLayout(layout: layout) } catch { throw .layout(error.description) }
    logger.debug("kernel: slide \(hex64(location.slide)), phys_base \(hex64(location.physBase)), 5-level \(location.fiveLevel)")
    phase("locate kernel")

    let pageSize: UInt64 = 4096
    let frameCount = memory.end / pageSize
    var anomalies: [String: Int] = [:]
    func anomaly(_ what: String, _ n: Int = 1) { anomalies[what, default: 0] += n }

    // The kernel image, as physical frames.
    func imageFrames(_ from: String, _ to: String, _ color: Color) -> KernelImageRange? {
      guard let a = layout.symbol(from)?.rawValue, let b = layout.symbol(to)?.rawValue, b > a,
        let pa = space.physical(space.running(a))
      else { return nil }
      let first = pa / pageSize
      return KernelImageRange(frames: first..<(first + (b - a + pageSize - 1) / pageSize), color: color)
    }
    let image = [
      imageFrames("_text", "_etext", .kernelCode), imageFrames("__start_rodata", "__end_rodata", .kernelData),
      imageFrames("_sdata", "_edata", .kernelData), imageFrames("__bss_start", "__bss_stop", .kernelData),
    ].compactMap { $0 }
    let zeroFrame = layout.symbol("empty_zero_page").flatMap { space.physical(space.running($0.rawValue)) }.map { $0 / pageSize }
    let classifier = PageClassifier(layout: pages, kernelImage: image, zeroPageFrame: zeroFrame)

    // Sections with a memory map (SPARSEMEM_EXTREME + VMEMMAP, as Debian's kernels use).
    let info = location.vmcoreinfo
    let sectionBits = info.number("SECTION_SIZE_BITS") ?? 27
    guard sectionBits >= 15, sectionBits <= 40 else { throw .missingFact("implausible SECTION_SIZE_BITS \(sectionBits)") }
    let framesPerSection = UInt64(1) << (sectionBits - 12)
    let sectionStructSize = UInt64((try? layout.size(of: "mem_section")) ?? 16)
    let perRoot = pageSize / max(sectionStructSize, 8)
    guard let memSectionSym = layout.symbol("mem_section")?.rawValue,
      let root = space.u64(space.running(memSectionSym)), root != 0
    else { throw .missingFact("cannot read mem_section") }
    if let v = info.symbol("mem_section"), v != root { anomaly("mem_section differs from vmcoreinfo") }

    var entries = [UInt16](repeating: FrameEntry(.reserved).rawValue, count: Int(frameCount))
    // Page-cache frames to resolve after the walk: frame -> (mapping, file index).
    var cacheFrames: [(frame: UInt64, mapping: UInt64, index: UInt64)] = []
    var sectionsWalked = 0
    var walkedFrames: UInt64 = 0
    let sectionCount = (frameCount + framesPerSection - 1) / framesPerSection
    var headVerdicts: [UInt64: (Color, PageFlags, UInt64, UInt64)] = [:]  // tails beyond a batch
    for nr in 0..<sectionCount {
      guard let rootEntry = space.u64(root &+ (nr / perRoot) * 8), rootEntry != 0,
        let sectionMap = space.u64(rootEntry &+ (nr % perRoot) * sectionStructSize)
      else { continue }
      // SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP
      guard sectionMap & 3 == 3 else { continue }
      sectionsWalked += 1
      let first = nr * framesPerSection
      let last = min(first + framesPerSection, frameCount)
      var pfn = first
      var freeUntil: UInt64 = 0
      // The head's verdict for compound tails: color, flags, mapping, index.
      var lastHead: (pfn: UInt64, color: Color, flags: PageFlags, mapping: UInt64, index: UInt64)? = nil
      while pfn < last {
        let va = location.vmemmapBase &+ pfn &* UInt64(pages.size)
        guard let t = space.tables.translate(root: location.topTable, va: va) else {
          anomaly("struct page not mapped")
          entries[Int(pfn)] = FrameEntry(.unknown, .anomaly).rawValue
          pfn += 1
          continue
        }
        // As many struct pages as this mapping holds, in one read.
        let inMapping = (t.size - (va & (t.size - 1))) / UInt64(pages.size)
        let n = Int(min(max(inMapping, 1), last - pfn))
        let ok: Bool? = memory.withBytes(at: t.pa, count: n * pages.size) { raw in
          for k in 0..<n {
            let f = pfn + UInt64(k)
            if f < freeUntil { continue }
            let r = PageRecord(raw, at: k * pages.size, pages)
            var verdict = classifier.verdict(r, frame: f)
            if case .tail(let headVA) = verdict {
              let delta = headVA &- location.vmemmapBase
              let headPFN = delta / UInt64(pages.size)
              if delta % UInt64(pages.size) == 0, headPFN < f, f - headPFN < (1 << 18) {
                if let h = lastHead, h.pfn == headPFN {
                  verdict = h.mapping != 0
                    ? .pageCache(mapping: h.mapping, index: h.index &+ (f - headPFN), h.flags)
                    : .color(h.color, h.flags)
                } else if let h = headVerdicts[headPFN] {
                  verdict = h.2 != 0 ? .pageCache(mapping: h.2, index: h.3 &+ (f - headPFN), h.1) : .color(h.0, h.1)
                } else {
                  verdict = .color(.unknown, .anomaly)
                  anomalies["tail page whose head was not seen", default: 0] += 1
                }
              } else {
                verdict = .color(.unknown, .anomaly)
                anomalies["tail page with a bad head pointer", default: 0] += 1
              }
            }
            switch verdict {
            case .freeBlock(let order):
              let end = min(f + (1 << UInt64(order)), last)
              for g in f..<end { entries[Int(g)] = FrameEntry(.free).rawValue }
              freeUntil = end
              lastHead = nil
            case .color(let c, let fl):
              entries[Int(f)] = FrameEntry(c, fl).rawValue
              if !r.isTail {
                lastHead = (f, c, fl, 0, 0)
                if r.has(pages.pgHead) { headVerdicts[f] = (c, fl, 0, 0) }
              }
            case .pageCache(let mapping, let index, let fl):
              entries[Int(f)] = FrameEntry(.pageCache, fl).rawValue
              cacheFrames.append((f, mapping, index))
              if !r.isTail {
                lastHead = (f, .pageCache, fl, mapping, index)
                if r.has(pages.pgHead) { headVerdicts[f] = (.pageCache, fl, mapping, index) }
              }
            case .anomaly(let what):
              entries[Int(f)] = FrameEntry(.unknown, .anomaly).rawValue
              anomalies[what, default: 0] += 1
              lastHead = nil
            case .tail:
              break
            }
          }
          return true
        }
        if ok == nil {
          anomaly("struct pages outside guest RAM", n)
          for k in 0..<n { entries[Int(pfn) + k] = FrameEntry(.unknown, .anomaly).rawValue }
        }
        walkedFrames += UInt64(n)
        pfn += UInt64(n)
      }
      // A gigantic page's head may be in an earlier section; keep only what is still useful.
      if headVerdicts.count > 4096 { headVerdicts.removeAll(keepingCapacity: true) }
    }
    guard sectionsWalked > 0 else { throw .missingFact("no memory section with a memory map") }
    logger.debug("walked \(walkedFrames) struct pages in \(sectionsWalked) sections")
    phase("walk struct pages")

    // Page cache identities: mapping -> address_space.host -> inode (i_ino, i_sb -> s_dev).
    var extents: [AttributeExtent] = []
    do {
      let hostOff = UInt64(try layout.offset(of: "address_space", member: "host"))
      let inoOff = UInt64(try layout.offset(of: "inode", member: "i_ino"))
      let sbOff = UInt64(try layout.offset(of: "inode", member: "i_sb"))
      let devOff = UInt64(try layout.offset(of: "super_block", member: "s_dev"))
      var identities: [UInt64: (UInt32, UInt64)?] = [:]
      for (frame, mapping, index) in cacheFrames {
        let id: (UInt32, UInt64)?
        if let known = identities[mapping] {
          id = known
        } else {
          var found: (UInt32, UInt64)? = nil
          if let inode = space.u64(mapping &+ hostOff), inode != 0,
            let ino = space.u64(inode &+ inoOff), let sb = space.u64(inode &+ sbOff),
            let dev = space.u32(sb &+ devOff)
          {
            found = (dev, ino)
          }
          identities[mapping] = found
          id = found
        }
        // A mapping that leads to no inode is not an address_space: the frame's `mapping` is
        // not what page cache would hold, so the frame is not called page cache.
        guard let (dev, ino) = id else {
          entries[Int(frame)] = FrameEntry(.unknown, .anomaly).rawValue
          anomaly("page-cache mapping not readable")
          continue
        }
        if var last = extents.last, last.end == frame, let file = last.file, file.device == dev,
          file.inode == ino, file.index &+ last.count == index
        {
          last.count += 1
          extents[extents.count - 1] = last
        } else {
          extents.append(AttributeExtent(start: frame, count: 1, file: FileIdentity(device: dev, inode: ino, index: index)))
        }
      }
    } catch {
      anomaly("layout lacks page-cache types: \(error)")
    }
    phase("resolve page cache")

    var processes: [GuestProcess] = []
    if options.walkProcesses {
      processes = walkProcesses(space: space, layout: layout, entries: &entries, anomaly: anomaly)
      phase("walk processes")
    }

    if options.zeroScan {
      var zeroed = 0
      for f in 0..<Int(frameCount) {
        let c = FrameEntry(rawValue: entries[f]).color
        guard c != .free, c != .reserved, c != .zero else { continue }
        let isZero = memory.withBytes(at: UInt64(f) * pageSize, count: Int(pageSize)) { raw -> Bool in
          var acc: UInt64 = 0
          for w in 0..<512 { acc |= raw.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) }
          return acc == 0
        }
        if isZero == true {
          entries[f] = FrameEntry(.zero, FrameEntry(rawValue: entries[f]).flags).rawValue
          zeroed += 1
        }
      }
      logger.debug("zero scan: \(zeroed) frames")
      phase("zero scan")
    }

    var sources: ColorSources = .hostIntrospection
    if options.zeroScan { sources.insert(.contentScan) }
    let header = ColorMapHeader(
      pageSize: UInt32(pageSize), sources: sources, created: created, image: .none,
      kernelRelease: info.release, kernelBuildID: info.buildID,
      metadata: [("generator", "kscope color (host introspection)")])
    var map = ColorMap(header: header, entries: entries, extents: extents)
    phase("build map")
    var hintReport: HintMergeReport? = nil
    if let hints = options.hints {
      let (merged, report) = HintMerge.merge(map, hints: hints)
      map = merged
      hintReport = report
      phase("merge hints")
    }
    return Analysis(
      map: map, location: location, processes: processes, anomalies: anomalies, phases: phases,
      sectionsWalked: sectionsWalked, hints: hintReport)
  }

  /// A task from the task list: its page-table root (physical), nil for kernel threads or
  /// when its mm cannot be read.
  struct TaskRoot {
    var pid: Int32
    var command: String
    var root: UInt64?
  }

  /// Walks the task list from init_task and every process's page tables: marks frames mapped
  /// (and executable where a user mapping allows execution), turns executable page cache into
  /// user-code. Bounded against cyclic or endless lists.
  static func walkProcesses(
    space: KernelAddressSpace, layout: KernelLayout, entries: inout [UInt16],
    anomaly: (String, Int) -> Void
  ) -> [GuestProcess] {
    guard let initTask = layout.symbol("init_task")?.rawValue,
      let tasksOff = try? layout.offset(of: "task_struct", member: "tasks"),
      let mmOff = try? layout.offset(of: "task_struct", member: "mm"),
      let pidOff = try? layout.offset(of: "task_struct", member: "pid"),
      let commOff = try? layout.offset(of: "task_struct", member: "comm"),
      let pgdOff = try? layout.offset(of: "mm_struct", member: "pgd")
    else {
      anomaly("layout lacks task_struct/mm_struct members", 1)
      return []
    }
    var tasks: [TaskRoot] = []
    let start = space.running(initTask)
    var task = start
    var seenTasks = Set<UInt64>()
    var closed = false
    for _ in 0..<maxTasks {
      guard seenTasks.insert(task).inserted else { break }
      guard let pidRaw = space.u32(task &+ UInt64(pidOff)), let mm = space.u64(task &+ UInt64(mmOff)) else {
        anomaly("task_struct not readable", 1)
        break
      }
      let comm = space.bytes(task &+ UInt64(commOff), count: 16).map {
        String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
      } ?? "?"
      let root = mm == 0 ? nil : space.u64(mm &+ UInt64(pgdOff)).flatMap { space.physical($0) }
      tasks.append(TaskRoot(pid: Int32(bitPattern: pidRaw), command: comm, root: root))
      guard let next = space.u64(task &+ UInt64(tasksOff)) else {
        anomaly("task list not readable", 1)
        break
      }
      task = next &- UInt64(tasksOff)
      if task == start {
        closed = true
        break
      }
    }
    if !closed { anomaly("task list did not return to init_task", 1) }
    return markMappings(
      tasks: tasks, tables: space.tables, entries: &entries, budget: max(entries.count * 16, 1 << 24), anomaly: anomaly)
  }

  static let maxTasks = 65_536
  /// What visiting one page table costs against the budget: its 512 entries are each looked at.
  static let tableCost = 512

  /// Marks what each task's page tables map. Each page-table root is walked once, however many
  /// tasks (threads, or a hostile guest's forged tasks) share it. The walk stops at `budget`:
  /// every table visited, every leaf (inside RAM or not) and every frame marked spends from it,
  /// so no guest can make it run longer than a real guest's tables would.
  static func markMappings(
    tasks: [TaskRoot], tables: PageTableWalker, entries: inout [UInt16], budget initial: Int,
    anomaly: (String, Int) -> Void
  ) -> [GuestProcess] {
    var out: [GuestProcess] = []
    var budget = initial
    var seenRoots = Set<UInt64>()
    let frameCount = UInt64(entries.count)
    let ramEnd = frameCount &* 4096
    for t in tasks {
      var mapped = 0
      if budget > 0, let root = t.root, seenRoots.insert(root).inserted {
        let stats = tables.forEachUserLeaf(root: root, maxLeaves: budget, maxTables: budget / tableCost + 1) { leaf in
          budget -= 1
          guard leaf.user, leaf.pa < ramEnd, budget > 0 else { return }
          var pa = leaf.pa
          let end = min(leaf.pa &+ leaf.size, ramEnd)
          while pa < end && budget > 0 {
            budget -= 1
            let f = pa / 4096
            pa += 4096
            var e = FrameEntry(rawValue: entries[Int(f)])
            var fl = e.flags
            fl.insert(.mapped)
            if leaf.executable { fl.insert(.executable) }
            if leaf.dirty && leaf.writable { fl.insert(.dirty) }
            let color: Color = e.color == .pageCache && leaf.executable ? .userCode : e.color
            e = FrameEntry(color, fl)
            entries[Int(f)] = e.rawValue
            mapped += 1
          }
        }
        budget -= stats.tablesVisited * tableCost
        if stats.anomalies > 0 { anomaly("page table anomalies", stats.anomalies) }
        if budget <= 0 { anomaly("process mappings beyond any real guest's (walk stopped)", 1) }
      }
      out.append(GuestProcess(pid: t.pid, command: t.command, mappedFrames: mapped))
    }
    return out
  }
}

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
