import Testing

@testable import KscopeCore

/// frames: 0-3 free, 4-5 kernel-code, 6-11 page-cache (inode 7 at 6-8, inode 9 at 9-10), 12 free
func smallMap() -> ColorMap {
  let c: [Color] = [.free, .free, .free, .free, .kernelCode, .kernelCode] + Array(repeating: .pageCache, count: 6) + [.free]
  var entries = c.map { FrameEntry($0).rawValue }
  entries[7] = FrameEntry(.pageCache, [.mapped, .dirty]).rawValue
  return ColorMap(
    header: ColorMapHeader(), entries: entries,
    extents: [
      AttributeExtent(start: 6, count: 3, file: FileIdentity(device: 1, inode: 7, index: 100), path: "/a"),
      AttributeExtent(start: 9, count: 2, file: FileIdentity(device: 1, inode: 9, index: 0), owner: 42),
    ])
}

@Test func runIndexAndTotals() {
  let m = smallMap()
  #expect(m.runs == [
    ColorRun(start: 0, count: 4, color: .free), ColorRun(start: 4, count: 2, color: .kernelCode),
    ColorRun(start: 6, count: 6, color: .pageCache), ColorRun(start: 12, count: 1, color: .free),
  ])
  #expect(m.count(of: .free) == 5)
  #expect(m.colorRuns[Int(Color.free.rawValue)] == [0, 3])
  #expect(m.entry(at: 7)?.flags == [.mapped, .dirty])
  #expect(m.entry(at: 13) == nil)
  #expect(m.extent(at: 8)?.file?.inode == 7)
  #expect(m.extent(at: 11) == nil)
}

@Test func queryByFrameGivesFlagsAndAttributes() {
  let r = smallMap().query(ColorMapQuery(range: 7..<8))
  #expect(r.runs.count == 1)
  #expect(r.runs[0].color == .pageCache)
  #expect(r.runs[0].flags == [.mapped, .dirty])
  #expect(r.runs[0].attributes?.file == FileIdentity(device: 1, inode: 7, index: 101))
  #expect(r.runs[0].attributes?.path == "/a")
}

@Test func queryByRangeClipsAndSplitsByAttributesAndFlags() {
  let r = smallMap().query(ColorMapQuery(range: 2..<11))
  // Frame 7 alone has flags: the inode-7 extent splits around it.
  #expect(r.runs.map { [$0.start, $0.count] } == [[2, 2], [4, 2], [6, 1], [7, 1], [8, 1], [9, 2]])
  #expect(r.runs.map(\.flags) == [[], [], [], [.mapped, .dirty], [], []])
  #expect(r.runs.map { $0.attributes?.file?.index } == [nil, nil, 100, 101, 102, 0])
  #expect(r.totalFrames == 9)
  #expect(r.runs[5].attributes?.owner == 42)
}

@Test func queryByDevice() {
  var m = smallMap()
  m = ColorMap(
    header: m.header, entries: m.entries,
    extents: [m.extents[0], AttributeExtent(start: 9, count: 2, file: FileIdentity(device: 2, inode: 7, index: 0))])
  // Inode 7 exists on two devices; --dev picks one.
  #expect(m.query(ColorMapQuery(inode: 7)).totalFrames == 5)
  #expect(m.query(ColorMapQuery(inode: 7, device: 2)).runs.map { [$0.start, $0.count] } == [[9, 2]])
  #expect(m.query(ColorMapQuery(device: 1)).totalFrames == 3)
  #expect(m.query(ColorMapQuery(inode: 9, device: 1)).runs.isEmpty)
}

@Test func queryByColorUsesOnlyThatColor() {
  let m = smallMap()
  #expect(m.query(ColorMapQuery(color: .free)).runs.map(\.start) == [0, 12])
  #expect(m.query(ColorMapQuery(range: 1..<13, color: .free)).runs.map { [$0.start, $0.count] } == [[1, 3], [12, 1]])
  #expect(m.query(ColorMapQuery(color: .userData)).runs.isEmpty)
}

@Test func queryByInode() {
  let m = smallMap()
  let r = m.query(ColorMapQuery(inode: 9))
  #expect(r.runs.map { [$0.start, $0.count] } == [[9, 2]])
  #expect(m.query(ColorMapQuery(range: 7..<20, inode: 7)).runs.first?.attributes?.file?.index == 101)
  #expect(m.query(ColorMapQuery(color: .free, inode: 7)).runs.isEmpty)
}

@Test func queryLimitKeepsTotals() {
  let r = smallMap().query(ColorMapQuery(), limit: 2)
  #expect(r.runs.count == 2)
  // Runs split where color, file or flags change: frame 7 alone has flags.
  #expect(r.totalRuns == 8)
  #expect(r.totalFrames == 13)
  #expect(r.truncated)
}

@Test func queriesAgreeWithABruteForceScan() {
  let map = sampleMap(frames: 20_000, seed: 77)
  var rng = SplitMix64(seed: 5)
  for _ in 0..<200 {
    let a = rng.next() % 20_000
    let b = min(20_000, a + rng.next() % 3000)
    let color: Color? = rng.next() % 2 == 0 ? Color.allCases[Int(rng.next() % 12)] : nil
    let r = map.query(ColorMapQuery(range: a..<b, color: color))
    var expected: UInt64 = 0
    for i in a..<b where color == nil || map.entry(at: i)?.color == color { expected += 1 }
    #expect(r.totalFrames == expected)
    for run in r.runs {
      for i in run.start..<(run.start + run.count) { #expect(map.entry(at: i)?.color == run.color) }
    }
  }
}

@Test func diffFindsChangedRuns() {
  let a = ColorMap(header: ColorMapHeader(), entries: [1, 1, 1, 9, 9].map { UInt16($0) })
  let b = ColorMap(header: ColorMapHeader(), entries: [1, 9, 9, 9, 9, 2].map { UInt16($0) })
  let d = a.diff(to: b)
  #expect(d.changes == [
    ColorChange(start: 1, count: 2, from: .free, to: .userData),
    ColorChange(start: 5, count: 1, from: nil, to: .zero),
  ])
  #expect(d.changedFrames == 3)
  #expect(d.matrix[ColorPair(from: .free, to: .userData)] == 2)
  #expect(a.diff(to: a).changes.isEmpty)
}
