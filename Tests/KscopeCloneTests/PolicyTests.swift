import KscopeCore
import Testing

@testable import KscopeClone

/// A 64-frame guest: 0-3 kernel code, 4-5 kernel data, 6 page table, 7-15 free, 16-23 page cache
/// of file (1, 10) in reversed file order, 24-27 user code, 28-35 user data, 36-43 kernel heap,
/// 44-47 zero, 48-63 free.
func smallMap() -> ColorMap {
  var colors = [Color](repeating: .free, count: 64)
  func paint(_ r: Range<Int>, _ c: Color) { for i in r { colors[i] = c } }
  paint(0..<4, .kernelCode)
  paint(4..<6, .kernelData)
  paint(6..<7, .pageTable)
  paint(16..<24, .pageCache)
  paint(24..<28, .userCode)
  paint(28..<36, .userData)
  paint(36..<44, .kernelHeap)
  paint(44..<48, .zero)
  // Frames 16..23 cache file indices 7, 6, ..., 0: one extent per frame (indices descend).
  let extents = (0..<8).map { k in
    AttributeExtent(
      start: UInt64(16 + k), count: 1, file: FileIdentity(device: 1, inode: 10, index: UInt64(7 - k)))
  }
  return ColorMap(
    header: ColorMapHeader(), entries: colors.map { FrameEntry($0).rawValue }, extents: extents)
}

@Suite struct PolicyTests {
  let map = smallMap()

  @Test func namesResolve() throws {
    for name in ["eager", "on-demand", "readahead-8", "kaleidoscope"] {
      #expect(try PolicyName.make(name, map: map).name == name)
    }
    #expect(try PolicyName.make("working-set", map: map, workingSet: [1]).name == "working-set")
    #expect(throws: PolicyError.self) { try PolicyName.make("working-set", map: map) }
    for bad in ["", "readahead-0", "readahead-x", "readahead-5000", "lazy"] {
      #expect(throws: PolicyError.self) { try PolicyName.make(bad, map: map) }
    }
  }

  @Test func eagerCopiesEverythingBeforeResume() {
    let p = EagerPolicy(frameCount: 64)
    #expect(p.beforeResume() == [FrameRange(start: 0, count: 64)])
    #expect(p.holes().isEmpty)
  }

  @Test func readaheadIsAWindowAroundTheMissClippedToTheGuest() {
    let p = ReadaheadPolicy(window: 8, frameCount: 64)
    #expect(p.miss(frame: 20).now == [FrameRange(start: 17, count: 8)])
    #expect(p.miss(frame: 1).now == [FrameRange(start: 0, count: 8)])
    #expect(p.miss(frame: 63).now == [FrameRange(start: 56, count: 8)])
    #expect(ReadaheadPolicy(window: 1, frameCount: 64).miss(frame: 5).now == [FrameRange(start: 5, count: 1)])
  }

  @Test func kaleidoscopeHolesAreFreeAndZeroOnlyWhenTheKernelAllowsIt() {
    let k = KaleidoscopePolicy(map: map, freeIsHole: true)
    #expect(
      k.holes() == [
        FrameRange(start: 7, count: 9), FrameRange(start: 44, count: 4), FrameRange(start: 48, count: 16),
      ])
    let poisoned = KaleidoscopePolicy(map: map, freeIsHole: false)
    #expect(poisoned.holes() == [FrameRange(start: 44, count: 4)])
    #expect(poisoned.miss(frame: 8).now == [FrameRange(start: 8, count: 1)])
    #expect(k.miss(frame: 8).now.isEmpty)
  }

  @Test func kaleidoscopeFetchesKernelAndPageTablesBeforeResume() {
    let k = KaleidoscopePolicy(map: map, freeIsHole: true)
    #expect(k.beforeResume() == [FrameRange(start: 0, count: 4), FrameRange(start: 4, count: 2), FrameRange(start: 6, count: 1)])
  }

  @Test func kaleidoscopeReadsPageCacheInFileOrderNotPhysicalOrder() {
    let k = KaleidoscopePolicy(map: map, freeIsHole: true)
    // Frame 23 caches index 0; file order continues at frames 22, 21, ... (descending).
    let plan = k.miss(frame: 23)
    #expect(plan.now == [FrameRange(start: 23, count: 1), FrameRange(start: 22, count: 1),
      FrameRange(start: 21, count: 1), FrameRange(start: 20, count: 1), FrameRange(start: 19, count: 1),
      FrameRange(start: 18, count: 1), FrameRange(start: 17, count: 1), FrameRange(start: 16, count: 1)])
    // Index 5 (frame 18): the rest of the file after it, not its physical neighbours.
    #expect(k.miss(frame: 18).now == [FrameRange(start: 18, count: 1), FrameRange(start: 17, count: 1), FrameRange(start: 16, count: 1)])
  }

  @Test func kaleidoscopeUserCodeByRegionUserDataSmallReadahead() {
    let k = KaleidoscopePolicy(map: map, freeIsHole: true)
    #expect(k.miss(frame: 25).now == [FrameRange(start: 24, count: 4)])
    #expect(k.miss(frame: 29).now == [FrameRange(start: 29, count: 4)])
    #expect(k.miss(frame: 34).now == [FrameRange(start: 34, count: 2)])
    // Kernel heap: the aligned block of 8 around the miss (36..39 here; 40..43 is the next block).
    #expect(k.miss(frame: 37).now == [FrameRange(start: 32, count: 0), FrameRange(start: 36, count: 4)].filter { $0.count > 0 })
  }

  @Test func workingSetIsCoalescedIntoLargeReads() {
    let w = WorkingSetPolicy(firstTouch: [30, 5, 6, 7, 31, 5, 99], frameCount: 64)
    #expect(w.backgroundAtStart() == [FrameRange(start: 5, count: 3), FrameRange(start: 30, count: 2)])
    let kw = try! PolicyName.make("kaleidoscope+working-set", map: map, workingSet: [5, 6, 7, 8, 9, 30])
    // Frames 7..9 are free (holes): never fetched, even when recorded.
    #expect(kw.backgroundAtStart() == [FrameRange(start: 5, count: 2), FrameRange(start: 30, count: 1)])
  }

  @Test func subtractHoles() {
    let holes = [FrameRange(start: 2, count: 2), FrameRange(start: 6, count: 1)]
    #expect(subtract(holes, from: FrameRange(start: 0, count: 8)) == [
      FrameRange(start: 0, count: 2), FrameRange(start: 4, count: 2), FrameRange(start: 7, count: 1)])
    #expect(subtract(holes, from: FrameRange(start: 2, count: 2)) == [])
    #expect(subtract([], from: FrameRange(start: 3, count: 1)) == [FrameRange(start: 3, count: 1)])
  }
}
