import Testing

@testable import KscopeCore

@Test func pageFlagRulesInOrder() {
  let c = KernelPageFlagsClassifier(
    kernelImage: [KernelImageRange(frames: 100..<110, color: .kernelCode),
                  KernelImageRange(frames: 110..<120, color: .kernelData)],
    ram: [0..<1000])
  #expect(c.color(flags: KPF.nopage, frame: 5) == .reserved)
  #expect(c.color(flags: KPF.buddy, frame: 5) == .free)
  #expect(c.color(flags: KPF.zeroPage | KPF.reserved, frame: 5) == .zero)
  // Slab and page tables come before anon and page cache (6.12 slab frames can look anon).
  #expect(c.color(flags: KPF.slab | KPF.anon, frame: 5) == .kernelHeap)
  #expect(c.color(flags: KPF.pgtable | KPF.lru, frame: 5) == .pageTable)
  #expect(c.color(flags: KPF.reserved, frame: 105) == .kernelCode)
  #expect(c.color(flags: KPF.reserved, frame: 115) == .kernelData)
  #expect(c.color(flags: KPF.lru, frame: 115) == .pageCache, "image memory freed after boot")
  #expect(c.color(flags: 0, frame: 115) == .unknown)
  #expect(c.color(flags: KPF.anon | KPF.lru | KPF.mmap, frame: 5) == .userData)
  #expect(c.color(flags: KPF.lru | KPF.mmap, frame: 5) == .pageCache)
  #expect(c.color(flags: KPF.reserved, frame: 5) == .reserved)
  #expect(c.color(flags: 0, frame: 5000) == .reserved, "outside RAM")
  #expect(c.color(flags: 0, frame: 5) == .unknown, "no flags: page flags cannot say")
  #expect(c.color(flags: 0, frame: 5, mapCount: 1) == .kernelOther)
  #expect(c.color(flags: KPF.referenced, frame: 5) == .kernelOther)
  #expect(KernelPageFlagsClassifier().color(flags: 0, frame: 5000) == .unknown)
}

@Test func compoundTailsTakeTheirHeadsColor() {
  let c = KernelPageFlagsClassifier()
  // A slab head whose tails carry no slab bit (6.12), then an anon THP, then a lone page.
  let flags: [UInt64] = [
    KPF.slab | KPF.compoundHead, KPF.compoundTail, KPF.compoundTail,
    KPF.anon | KPF.thp | KPF.compoundHead, KPF.anon | KPF.thp | KPF.compoundTail,
    KPF.compoundTail,  // a tail right after another compound's tail stays with that head
    0,
  ]
  let entries = c.classify(flags: flags, mapCounts: nil).map { FrameEntry(rawValue: $0) }
  #expect(entries.map(\.color) == [.kernelHeap, .kernelHeap, .kernelHeap, .userData, .userData, .userData, .unknown])
  #expect(entries[4].flags.contains(.huge))
}

@Test func mapCountsSetMappedAndShared() {
  let c = KernelPageFlagsClassifier()
  let e = c.classify(flags: [KPF.lru | KPF.mmap, KPF.lru, KPF.anon | KPF.dirty], mapCounts: [3, 0, 1])
    .map { FrameEntry(rawValue: $0) }
  #expect(e[0].flags == [.mapped, .shared])
  #expect(e[1].flags == [])
  #expect(e[2].flags == [.mapped, .dirty])
  // Counts of the wrong length are ignored rather than misaligned.
  #expect(c.classify(flags: [KPF.lru], mapCounts: [5, 5]).map { FrameEntry(rawValue: $0).flags } == [[]])
}

@Test func resourceMapParsesIomem() {
  let text = """
    00000000-00000fff : Reserved
    00001000-0009fbff : System RAM
    00100000-bfffffff : System RAM
      01000000-022090c7 : Kernel code
      02400000-02e08fff : Kernel rodata
      03000000-0327c03f : Kernel data
      03b34000-03c57fff : Kernel bss
    c0001000-eebfffff : PCI Bus 0000:00
    garbage line
    100000000-63fffffff : System RAM
    """
  let m = ResourceMap(text: text)
  #expect(m.usable)
  #expect(m.skippedLines == 1)
  #expect(m.ramFrames(pageSize: 4096) == [1..<0x9f + 1, 0x100..<0xc0000, 0x100000..<0x640000])
  let k = m.kernelImage(pageSize: 4096)
  #expect(k.first == KernelImageRange(frames: 0x1000..<0x220a, color: .kernelCode))
  #expect(k.count == 4)
  #expect(k.dropFirst().allSatisfy { $0.color == .kernelData })
  #expect(!ResourceMap(text: "00000000-00000000 : System RAM\n").usable)
}

@Test func gnuBuildIDFromNotes() {
  // A non-GNU note first, then the build id (name "GNU\0", type 3).
  var w = ByteWriter()
  w.u32(6); w.u32(4); w.u32(1); w.raw(Array("Linux\0".utf8)); w.zeros(2); w.u32(0x0601)
  w.u32(4); w.u32(4); w.u32(3); w.raw([0x47, 0x4E, 0x55, 0]); w.raw([0xde, 0xad, 0xbe, 0xef])
  #expect(gnuBuildID(inNotes: w.bytes) == "deadbeef")
  #expect(gnuBuildID(inNotes: Array(w.bytes.prefix(30))) == nil)
  #expect(gnuBuildID(inNotes: [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 3, 0, 0, 0]) == nil)
}
