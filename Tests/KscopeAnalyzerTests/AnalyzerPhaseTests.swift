import KscopeCore
import KscopeLayout
import KscopeSnapshot
import Testing

@testable import KscopeAnalyzer

/// Each phase of `Analyzer.analyze` on its own, against the recorded 6.12 layout and small
/// crafted guest memories (the kernel-location phase is VMCoreInfoTests'; the hint merge is
/// HintMergeTests'; whole guests are GuestColoringTests').
@Suite struct AnalyzerPhaseTests {
  static let directMap: UInt64 = 0xffff_8880_0000_0000
  static let vmemmap: UInt64 = 0xffff_ea00_0000_0000

  /// A kernel "located" in `memory`: no KASLR, the direct map at its default base, vmemmap at
  /// its default base, no page tables (reads through the direct map and the image window).
  static func view(
    _ memory: ByteMemory, vmcoreinfo: String = "OSRELEASE=6.12.0-test\nBUILD-ID=abcd\n", physBase: UInt64 = 0
  ) throws -> GuestKernelView {
    let info = try #require(VMCoreInfo(text: Array(vmcoreinfo.utf8)[...]))
    let location = KernelLocation(
      vmcoreinfo: info, notePhysicalAddress: 0, slide: 0, physBase: physBase, fiveLevel: false, topTable: 0,
      pageOffsetBase: directMap, vmemmapBase: vmemmap)
    return try GuestKernelView(memory: memory, layout: try recordedLayout("6.12"), location: location)
  }

  // MARK: struct page rules

  @Test func compoundTailsTakeTheirHeadsVerdict() throws {
    let v = try Self.view(ImageBuilder(size: 64 * 4096).memory)
    let l = v.pages
    var rules = StructPageRules(v)
    var frames = FrameTable(frameCount: 64)
    func head(_ pfn: UInt64) -> UInt64 { Self.vmemmap + pfn * UInt64(l.size) | 1 }
    let cached: UInt64 = Self.directMap + 0x3000
    // A 4-page page-cache folio at frame 4 (file index 10), its tails 5...7.
    rules.startSection()
    rules.apply(
      PageRecord(flags: 1 << UInt64(l.pgHead), mapping: cached, index: 10), frame: 4, sectionEnd: 64, to: &frames)
    for f: UInt64 in 5...7 { rules.apply(PageRecord(compoundHead: head(4)), frame: f, sectionEnd: 64, to: &frames) }
    #expect((4...7).allSatisfy { frames.entry($0).color == .pageCache })
    #expect(rules.cacheFrames.map(\.index) == [10, 11, 12, 13])
    #expect(rules.cacheFrames.allSatisfy { $0.mapping == cached })
    // A tail whose head is not a struct page boundary, one whose head lies above it, one
    // whose head the walk never saw: unknown + anomaly, each counted under its name.
    rules.apply(PageRecord(compoundHead: head(4) + 8), frame: 9, sectionEnd: 64, to: &frames)
    rules.apply(PageRecord(compoundHead: head(20)), frame: 10, sectionEnd: 64, to: &frames)
    rules.apply(PageRecord(compoundHead: head(2)), frame: 11, sectionEnd: 64, to: &frames)
    for f: UInt64 in 9...11 { #expect(frames.entry(f) == FrameEntry(.unknown, .anomaly)) }
    #expect(frames.anomalies == ["tail page with a bad head pointer": 2, "tail page whose head was not seen": 1])
    // A head with PG_head is remembered across sections (a gigantic page spans them).
    rules.startSection()
    rules.apply(PageRecord(compoundHead: head(4)), frame: 12, sectionEnd: 64, to: &frames)
    #expect(rules.cacheFrames.last == CacheFrame(frame: 12, mapping: cached, index: 18))
  }

  @Test func freeBlocksCoverTheirFramesWithinTheSection() throws {
    let v = try Self.view(ImageBuilder(size: 64 * 4096).memory)
    var rules = StructPageRules(v)
    var frames = FrameTable(frameCount: 64)
    let buddy = PageRecord(privateValue: 3, pageType: 0xF000_0000, refcount: 0)  // 6.12: PGTY_buddy
    rules.startSection()
    rules.apply(buddy, frame: 16, sectionEnd: 20, to: &frames)
    // The block's other struct pages are not read again; the section's end bounds it.
    rules.apply(PageRecord(pageType: 0xF200_0000), frame: 17, sectionEnd: 20, to: &frames)
    #expect((16..<20).allSatisfy { frames.entry($0).color == .free })
    #expect(frames.entry(20).color == .reserved)
    rules.apply(PageRecord(pageType: 0xF200_0000), frame: 20, sectionEnd: 64, to: &frames)
    #expect(frames.entry(20).color == .pageTable)
  }

  // MARK: section walk

  @Test func theSectionWalkRefusesImplausibleGeometry() throws {
    let memory = ImageBuilder(size: 16 * 4096).memory
    var frames = FrameTable(frameCount: 16)
    let odd = try Self.view(memory, vmcoreinfo: "OSRELEASE=6.12.0-test\nNUMBER(SECTION_SIZE_BITS)=50\n")
    #expect(throws: AnalyzerError.missingFact("implausible SECTION_SIZE_BITS 50")) {
      try Analyzer.walkSections(odd, &frames)
    }
    // mem_section's symbol points outside this memory: nothing to walk, said in one line.
    #expect(throws: AnalyzerError.missingFact("cannot read mem_section")) {
      try Analyzer.walkSections(try Self.view(memory), &frames)
    }
  }

  // MARK: page-cache identity

  @Test func pageCacheFramesGetTheirFilesAndMergeIntoExtents() throws {
    let layout = try recordedLayout("6.12")
    var m = ImageBuilder(size: 16 * 4096)
    let mapping: UInt64 = 0x1000, inode: UInt64 = 0x2000, sb: UInt64 = 0x3000
    m.put64(mapping + UInt64(try layout.offset(of: "address_space", member: "host")), Self.directMap + inode)
    m.put64(inode + UInt64(try layout.offset(of: "inode", member: "i_ino")), 77)
    m.put64(inode + UInt64(try layout.offset(of: "inode", member: "i_sb")), Self.directMap + sb)
    m.put32(sb + UInt64(try layout.offset(of: "super_block", member: "s_dev")), 0x801)
    let v = try Self.view(m.memory)
    var frames = FrameTable(frameCount: 16)
    for f: UInt64 in 10...13 { frames.set(f, .pageCache) }
    let cache = [
      CacheFrame(frame: 10, mapping: Self.directMap + mapping, index: 5),
      CacheFrame(frame: 11, mapping: Self.directMap + mapping, index: 6),
      CacheFrame(frame: 12, mapping: Self.directMap + mapping, index: 9),
      // A mapping whose host is a null pointer is not an address_space.
      CacheFrame(frame: 13, mapping: Self.directMap + 0x5000, index: 0),
    ]
    let extents = Analyzer.identifyPageCache(cache, space: v.space, layout: layout, &frames)
    #expect(
      extents == [
        AttributeExtent(start: 10, count: 2, file: FileIdentity(device: 0x801, inode: 77, index: 5)),
        AttributeExtent(start: 12, count: 1, file: FileIdentity(device: 0x801, inode: 77, index: 9)),
      ])
    #expect(frames.entry(13) == FrameEntry(.unknown, .anomaly))
    #expect(frames.anomalies == ["page-cache mapping not readable": 1])
  }

  // MARK: process walk

  @Test func theProcessWalkFollowsTheTaskListAndStopsOnABrokenOne() throws {
    let layout = try recordedLayout("6.12")
    let initTask = try #require(layout.symbol("init_task")?.rawValue)
    let tasks = UInt64(try layout.offset(of: "task_struct", member: "tasks"))
    let pid = UInt64(try layout.offset(of: "task_struct", member: "pid"))
    let comm = UInt64(try layout.offset(of: "task_struct", member: "comm"))
    // init_task at physical 0x1000: the image window maps it there with this phys_base.
    let physBase = 0x1000 &- (initTask &- startKernelMap)
    var m = ImageBuilder(size: 64 * 4096)
    m.put(0x1000 + comm, Array("swapper/0".utf8))
    m.put64(0x1000 + tasks, initTask + tasks)  // a list of one: init_task alone
    var frames = FrameTable(frameCount: 64)
    let alone = try Self.view(m.memory, physBase: physBase)
    #expect(Analyzer.walkProcesses(space: alone.space, layout: layout, &frames) == [
      GuestProcess(pid: 0, command: "swapper/0", mappedFrames: 0)
    ])
    #expect(frames.anomalies.isEmpty)
    // A second task whose list pointer leads out of memory: the walk stops, says so.
    m.put32(0x1000 + pid, 0)
    m.put64(0x1000 + tasks, Self.directMap + 0x8000 + tasks)
    m.put32(0x8000 + pid, 42)
    m.put(0x8000 + comm, Array("evil".utf8))
    m.put64(0x8000 + tasks, Self.directMap + (1 << 40))
    frames = FrameTable(frameCount: 64)
    let broken = try Self.view(m.memory, physBase: physBase)
    let seen = Analyzer.walkProcesses(space: broken.space, layout: layout, &frames)
    #expect(seen.map(\.pid) == [0, 42])
    #expect(frames.anomalies["task_struct not readable"] == 1)
    #expect(frames.anomalies["task list did not return to init_task"] == 1)
  }

  // MARK: zero scan and header

  @Test func theZeroScanReadsOnlyFramesInUse() throws {
    var m = ImageBuilder(size: 4 * 4096)
    m.put(2 * 4096 + 100, [1])
    var frames = FrameTable(frameCount: 4)
    frames.set(0, .free)
    frames.set(1, .userData, .mapped)
    frames.set(2, .userData, .mapped)
    #expect(Analyzer.scanZeros(m.memory, &frames) == 1)
    #expect(frames.entry(0).color == .free)
    #expect(frames.entry(1) == FrameEntry(.zero, .mapped))
    #expect(frames.entry(2).color == .userData)
    #expect(frames.entry(3).color == .reserved)
  }

  @Test func theHeaderNamesItsSourcesAndKernel() throws {
    let info = try #require(VMCoreInfo(text: Array("OSRELEASE=6.12.9\nBUILD-ID=beef\n".utf8)[...]))
    let plain = Analyzer.header(info, zeroScan: false, created: 7)
    #expect(plain.sources == .hostIntrospection)
    #expect(plain.kernelRelease == "6.12.9" && plain.kernelBuildID == "beef" && plain.created == 7)
    #expect(Analyzer.header(info, zeroScan: true, created: 7).sources == [.hostIntrospection, .contentScan])
  }
}

/// RAM that ends far above any guest's (regions at 2^50) is refused before a frame table is
/// allocated for it.
@Test func ramEndingAt2To50IsRefused() throws {
  let memory = ByteMemory(
    bytes: [UInt8](repeating: 0, count: 4096), regions: [GuestRAMRegion(guestPhysicalStart: 1 << 50, size: 4096, fileOffset: 0)])
  #expect {
    try Analyzer.analyze(
      memory: memory, layout: try recordedLayout("6.12"), options: AnalyzerOptions(walkProcesses: false))
  } throws: { error in
    "\(error)" == "guest RAM ends at 0x4000000001000: more than 256 GiB of frames"
  }
}
