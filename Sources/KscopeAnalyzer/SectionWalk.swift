import KscopeCore
import KscopeLayout
import KscopeSnapshot

/// A page-cache frame to identify after the walk: its `mapping` (an address_space) and file
/// page index.
struct CacheFrame: Sendable, Equatable {
  var frame: UInt64
  var mapping: UInt64
  var index: UInt64
}

/// What the section walk did.
struct SectionWalk {
  var sectionsWalked = 0
  var walkedFrames: UInt64 = 0
  var cacheFrames: [CacheFrame] = []
}

extension Analyzer {
  /// The section-walk phase: every memory section with a memory map (SPARSEMEM_EXTREME +
  /// VMEMMAP, as Debian's kernels use), its struct pages read through vmemmap in as large
  /// pieces as their mapping allows, each through the struct page rules.
  static func walkSections(_ view: GuestKernelView, _ frames: inout FrameTable) throws(AnalyzerError) -> SectionWalk {
    let space = view.space
    let location = view.location
    let layout = view.layout
    let pageSize = GuestKernelView.pageSize
    // Locals, not `view.` paths, in the hot loop below.
    let memory = view.memory
    let pages = view.pages
    let structBytes = pages.size
    let structSize = UInt64(structBytes)
    let frameCount = UInt64(frames.entries.count)
    let info = location.vmcoreinfo
    let sectionBits = info.number("SECTION_SIZE_BITS") ?? 27
    guard sectionBits >= 15, sectionBits <= 40 else { throw .missingFact("implausible SECTION_SIZE_BITS \(sectionBits)") }
    let framesPerSection = UInt64(1) << (sectionBits - 12)
    let sectionStructSize = UInt64((try? layout.size(of: "mem_section")) ?? 16)
    let perRoot = pageSize / max(sectionStructSize, 8)
    guard let memSectionSym = layout.symbol("mem_section")?.rawValue,
      let root = space.u64(space.running(memSectionSym)), root != 0
    else { throw .missingFact("cannot read mem_section") }
    if let v = info.symbol("mem_section"), v != root { frames.anomaly("mem_section differs from vmcoreinfo") }

    var walk = SectionWalk()
    var rules = StructPageRules(view)
    let sectionCount = (frameCount + framesPerSection - 1) / framesPerSection
    for nr in 0..<sectionCount {
      guard let rootEntry = space.u64(root &+ (nr / perRoot) * 8), rootEntry != 0,
        let sectionMap = space.u64(rootEntry &+ (nr % perRoot) * sectionStructSize)
      else { continue }
      // SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP
      guard sectionMap & 3 == 3 else { continue }
      walk.sectionsWalked += 1
      let first = nr * framesPerSection
      let last = min(first + framesPerSection, frameCount)
      rules.startSection()
      var pfn = first
      while pfn < last {
        let va = location.vmemmapBase &+ pfn &* structSize
        guard let t = space.tables.translate(root: location.topTable, va: va) else {
          frames.anomaly("struct page not mapped")
          frames.set(pfn, .unknown, .anomaly)
          pfn += 1
          continue
        }
        // As many struct pages as this mapping holds, in one read.
        let inMapping = (t.size - (va & (t.size - 1))) / structSize
        let n = Int(min(max(inMapping, 1), last - pfn))
        let ok: Bool? = memory.withBytes(at: t.pa, count: n * structBytes) { raw in
          rules.apply(raw, pages, firstFrame: pfn, count: n, sectionEnd: last, to: &frames)
          return true
        }
        if ok == nil {
          frames.anomaly("struct pages outside guest RAM", n)
          for k in 0..<n { frames.set(pfn + UInt64(k), .unknown, .anomaly) }
        }
        walk.walkedFrames += UInt64(n)
        pfn += UInt64(n)
      }
      rules.endSection()
    }
    guard walk.sectionsWalked > 0 else { throw .missingFact("no memory section with a memory map") }
    walk.cacheFrames = rules.cacheFrames
    return walk
  }
}

/// The struct-page-rules phase, along the walk: each struct page's verdict
/// (`PageClassifier`), compound tails taking their head's verdict, free buddy blocks covering
/// their frames, page-cache frames kept for the identity phase.
struct StructPageRules {
  /// A head page's verdict, for its tails: color, flags, and for page cache its mapping and
  /// index (a tail's index is the head's plus its distance).
  struct Head {
    var pfn: UInt64
    var color: Color
    var flags: PageFlags
    var mapping: UInt64
    var index: UInt64
  }

  let classifier: PageClassifier
  let vmemmapBase: UInt64
  let structSize: UInt64
  let pgHead: Int
  /// Frames up to here belong to a free block already marked.
  var freeUntil: UInt64 = 0
  var lastHead: Head? = nil
  /// Heads whose tails may come in a later read (gigantic pages span reads and sections).
  var heads: [UInt64: Head] = [:]
  var cacheFrames: [CacheFrame] = []

  init(_ view: GuestKernelView) {
    classifier = view.classifier
    vmemmapBase = view.location.vmemmapBase
    structSize = UInt64(view.pages.size)
    pgHead = view.pages.pgHead
  }

  mutating func startSection() {
    freeUntil = 0
    lastHead = nil
  }

  /// A gigantic page's head may be in an earlier section; keep only what is still useful.
  mutating func endSection() {
    if heads.count > 4096 { heads.removeAll(keepingCapacity: true) }
  }

  /// The verdict for a tail whose struct page points at `headVA`: its head's, when the head
  /// is a plausible struct page below it that the walk has seen.
  func tailVerdict(headVA: UInt64, frame f: UInt64, _ anomalies: inout [String: Int]) -> PageVerdict {
    let delta = headVA &- vmemmapBase
    let headPFN = delta / structSize
    guard delta % structSize == 0, headPFN < f, f - headPFN < (1 << 18) else {
      anomalies["tail page with a bad head pointer", default: 0] += 1
      return .color(.unknown, .anomaly)
    }
    guard let h = lastHead?.pfn == headPFN ? lastHead : heads[headPFN] else {
      anomalies["tail page whose head was not seen", default: 0] += 1
      return .color(.unknown, .anomaly)
    }
    return h.mapping != 0
      ? .pageCache(mapping: h.mapping, index: h.index &+ (f - headPFN), h.flags) : .color(h.color, h.flags)
  }

  /// Applies `count` consecutive struct pages read in one piece, the first for `firstFrame`,
  /// in a section ending at `last`. The hot loop of the analyzer: the classifier is read into a
  /// local once (called through `self` while `self` is mutated, it would be copied for every
  /// frame), and the entries are written through one buffer (one uniqueness check a piece).
  mutating func apply(
    _ raw: UnsafeRawBufferPointer, _ pages: PageStructLayout, firstFrame: UInt64, count: Int, sectionEnd last: UInt64,
    to frames: inout FrameTable
  ) {
    precondition(last <= UInt64(frames.entries.count) && firstFrame + UInt64(count) <= last)
    let classifier = self.classifier
    var anomalies: [String: Int] = [:]
    frames.entries.withUnsafeMutableBufferPointer { entries in
      for k in 0..<count {
        apply(
          PageRecord(raw, at: k * pages.size, pages), frame: firstFrame + UInt64(k), sectionEnd: last,
          classifier: classifier, entries: entries, anomalies: &anomalies)
      }
    }
    for (what, n) in anomalies { frames.anomaly(what, n) }
  }

  /// Applies one struct page (frame `f`, in a section ending at `last`) to the table.
  mutating func apply(_ r: PageRecord, frame f: UInt64, sectionEnd last: UInt64, to frames: inout FrameTable) {
    precondition(f < last && last <= UInt64(frames.entries.count))
    let classifier = self.classifier
    var anomalies: [String: Int] = [:]
    frames.entries.withUnsafeMutableBufferPointer {
      apply(r, frame: f, sectionEnd: last, classifier: classifier, entries: $0, anomalies: &anomalies)
    }
    for (what, n) in anomalies { frames.anomaly(what, n) }
  }

  /// The rules for one struct page; `f < last <= entries.count` (the callers check it).
  @inline(__always)
  mutating func apply(
    _ r: PageRecord, frame f: UInt64, sectionEnd last: UInt64, classifier: PageClassifier,
    entries: UnsafeMutableBufferPointer<UInt16>, anomalies: inout [String: Int]
  ) {
    if f < freeUntil { return }
    var verdict = classifier.verdict(r, frame: f)
    if case .tail(let headVA) = verdict { verdict = tailVerdict(headVA: headVA, frame: f, &anomalies) }
    switch verdict {
    case .freeBlock(let order):
      let end = min(f + (1 << UInt64(order)), last)
      let free = FrameEntry(.free).rawValue
      for g in f..<end { entries[Int(g)] = free }
      freeUntil = end
      lastHead = nil
    case .color(let c, let fl):
      entries[Int(f)] = FrameEntry(c, fl).rawValue
      if !r.isTail { noteHead(Head(pfn: f, color: c, flags: fl, mapping: 0, index: 0), r) }
    case .pageCache(let mapping, let index, let fl):
      entries[Int(f)] = FrameEntry(.pageCache, fl).rawValue
      cacheFrames.append(CacheFrame(frame: f, mapping: mapping, index: index))
      if !r.isTail { noteHead(Head(pfn: f, color: .pageCache, flags: fl, mapping: mapping, index: index), r) }
    case .anomaly(let what):
      entries[Int(f)] = FrameEntry(.unknown, .anomaly).rawValue
      anomalies[what, default: 0] += 1
      lastHead = nil
    case .tail:
      break
    }
  }

  private mutating func noteHead(_ h: Head, _ r: PageRecord) {
    lastHead = h
    if r.has(pgHead) { heads[h.pfn] = h }
  }
}
