import KscopeCore
import Testing

@testable import KscopeAnalyzer

let P: UInt64 = 1, RW: UInt64 = 2, US: UInt64 = 4, PS: UInt64 = 0x80, NX: UInt64 = 1 << 63

/// Four levels: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000.
func fourLevelImage() -> ImageBuilder {
  var m = ImageBuilder(size: 0x10000)
  m.put64(0x1000, 0x2000 | P | RW | US)
  m.put64(0x2000, 0x3000 | P | RW | US)
  m.put64(0x2000 + 8, 0x4000_0000 | P | RW | US | PS)  // 1 GiB page at VA 1 GiB
  m.put64(0x3000, 0x4000 | P | RW | US)
  m.put64(0x3000 + 8, 0x20_0000 | P | US | PS)  // 2 MiB page at VA 2 MiB, read-only
  m.put64(0x4000 + 8, 0x8000 | P | RW | US | NX)  // VA 0x1000 -> 0x8000, no-exec data
  m.put64(0x4000 + 16, 0x9000 | P | US)  // VA 0x2000 -> 0x9000, user code
  m.put64(0x4000 + 24, 0xA000 | P)  // VA 0x3000 -> kernel-only
  m.put64(0x4000 + 32, 0xB000 | RW | US)  // not present
  return m
}

@Test func translatesThroughFourLevels() {
  let w = PageTableWalker(memory: fourLevelImage().memory, fiveLevel: false)
  #expect(w.translate(root: 0x1000, va: 0x1234)?.pa == 0x8234)
  #expect(w.translate(root: 0x1000, va: 0x2010)?.pa == 0x9010)
  #expect(w.translate(root: 0x1000, va: 0x4000) == nil, "not present")
  let big = w.translate(root: 0x1000, va: 0x20_1234)
  #expect(big?.pa == 0x20_1234)
  #expect(big?.size == 2 << 20)
  #expect(w.translate(root: 0x1000, va: 0x4000_0000 + 0x12345)?.pa == 0x4001_2345)
  #expect(w.translate(root: 0x1000, va: 0x4000_0000)?.size == 1 << 30)
  #expect(w.translate(root: 0x20_0000, va: 0) == nil, "root outside RAM")
}

@Test func enumeratesUserLeavesWithEffectivePermissions() {
  let w = PageTableWalker(memory: fourLevelImage().memory, fiveLevel: false)
  var leaves: [PageTableWalker.Leaf] = []
  let stats = w.forEachUserLeaf(root: 0x1000) { leaves.append($0) }
  #expect(stats.anomalies == 0)
  #expect(leaves.map(\.va) == [0x1000, 0x2000, 0x3000, 0x20_0000, 0x4000_0000])
  let byVA = Dictionary(uniqueKeysWithValues: leaves.map { ($0.va, $0) })
  #expect(byVA[0x1000]?.executable == false)
  #expect(byVA[0x1000]?.writable == true)
  #expect(byVA[0x2000]?.executable == true)
  #expect(byVA[0x2000]?.writable == false)
  #expect(byVA[0x3000]?.user == false)
  #expect(byVA[0x20_0000]?.size == 2 << 20)
  #expect(byVA[0x4000_0000]?.size == 1 << 30)
}

@Test func fiveLevelsAddOneTable() {
  var m = fourLevelImage()
  m.put64(0x5000, 0x1000 | P | RW | US)  // PML5 -> the PML4 above
  let w = PageTableWalker(memory: m.memory, fiveLevel: true)
  #expect(w.translate(root: 0x5000, va: 0x1234)?.pa == 0x8234)
  var n = 0
  _ = w.forEachUserLeaf(root: 0x5000) { _ in n += 1 }
  #expect(n == 5)
}

@Test func hostileTablesAreBounded() {
  var m = fourLevelImage()
  m.put64(0x3000 + 16, 0x3000 | P | RW | US)  // the PD points at itself
  m.put64(0x3000 + 24, 0x7FFF_F000 | P | RW | US)  // a table outside RAM
  for i in 0..<512 { m.put64(0x6000 + UInt64(i) * 8, 0x6000 | P | US) }  // a PT-level loop
  m.put64(0x2000 + 16, 0x6000 | P | US)
  let w = PageTableWalker(memory: m.memory, fiveLevel: false)
  var n = 0
  let stats = w.forEachUserLeaf(root: 0x1000, maxLeaves: 100_000) { _ in n += 1 }
  #expect(stats.anomalies > 0)
  #expect(n < 100_000)
  // A table full of entries pointing back at itself is visited once per level.
  #expect(stats.tablesVisited < 20)
}

/// Every PDPT entry a 1 GiB user page over the same RAM: the leaves are bounded by the walker
/// and the frames by the process walk's budget, so this finishes quickly.
@Test func manyHugeLeavesAreBounded() {
  var m = ImageBuilder(size: 0x10000)
  m.put64(0x1000, 0x2000 | P | RW | US)
  for i in 0..<512 { m.put64(0x2000 + UInt64(i) * 8, 0 | P | RW | US | PS) }
  let w = PageTableWalker(memory: m.memory, fiveLevel: false)
  var leaves = 0
  var bytes: UInt64 = 0
  let stats = w.forEachUserLeaf(root: 0x1000) { leaves += 1; bytes += $0.size }
  #expect(leaves == 512)
  #expect(bytes == 512 << 30)
  #expect(stats.anomalies == 0)
}

/// One root whose PDPT holds 512 user 1 GiB leaves: the first over the 64 KiB of RAM, the rest
/// far outside it.
func hugeLeavesImage() -> ImageBuilder {
  var m = ImageBuilder(size: 0x10000)
  m.put64(0x1000, 0x2000 | P | RW | US)
  for i in 0..<512 { m.put64(0x2000 + UInt64(i) * 8, (UInt64(i) << 30) | P | RW | US | PS) }
  return m
}

/// 65,536 tasks (each its own mm, as forged tasks would be) sharing one page-table root: the
/// root is walked once, so the walk costs what one process costs.
@Test func tasksSharingARootWalkItOnce() {
  let m = hugeLeavesImage()
  let w = PageTableWalker(memory: m.memory, fiveLevel: false)
  var entries = [UInt16](repeating: FrameEntry(.kernelOther).rawValue, count: 16)
  let tasks = (0..<65_536).map { Analyzer.TaskRoot(pid: Int32($0), command: "t", root: 0x1000) }
  var anomalies: [String: Int] = [:]
  // Enough for one walk (2 tables, 512 leaves, 16 frames), far too little for 65,536.
  let processes = Analyzer.markMappings(
    tasks: tasks, tables: w, entries: &entries, budget: 4 * Analyzer.tableCost + 1024, anomaly: { anomalies[$0, default: 0] += $1 })
  #expect(anomalies.isEmpty, "\(anomalies)")
  #expect(processes.count == 65_536)
  #expect(processes[0].mappedFrames == 16)
  #expect(processes.dropFirst().allSatisfy { $0.mappedFrames == 0 })
  #expect(entries.allSatisfy { FrameEntry(rawValue: $0).flags.contains(.mapped) })
}

/// Leaves outside RAM mark nothing but still spend the budget: a guest cannot make the walk
/// visit millions of them for free.
@Test func leavesOutsideRAMSpendTheBudget() {
  let w = PageTableWalker(memory: hugeLeavesImage().memory, fiveLevel: false)
  var entries = [UInt16](repeating: FrameEntry(.kernelOther).rawValue, count: 16)
  var anomalies: [String: Int] = [:]
  // Two tables and 200 leaves' worth: the 511 leaves outside RAM exhaust it.
  _ = Analyzer.markMappings(
    tasks: [Analyzer.TaskRoot(pid: 1, command: "t", root: 0x1000)], tables: w, entries: &entries,
    budget: 2 * Analyzer.tableCost + 200, anomaly: { anomalies[$0, default: 0] += $1 })
  #expect(anomalies["process mappings beyond any real guest's (walk stopped)"] == 1, "\(anomalies)")
  // The walker itself stopped near the budget rather than reporting all 512 leaves.
  var leaves = 0
  let stats = w.forEachUserLeaf(root: 0x1000, maxLeaves: 200) { _ in leaves += 1 }
  #expect(leaves == 200)
  #expect(stats.anomalies > 0)
}
