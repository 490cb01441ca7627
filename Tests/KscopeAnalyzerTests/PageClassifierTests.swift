import KscopeCore
import KscopeLayout
import Testing

@testable import KscopeAnalyzer

/// Crafted struct pages against the real 6.1 and 6.12 layouts: each rule, in order.
@Test(arguments: ["6.1", "6.12"])
func pageRules(series: String) throws {
  let layout = try recordedLayout(series)
  let l = try PageStructLayout(layout: layout)
  let c = PageClassifier(
    layout: l, kernelImage: [KernelImageRange(frames: 100..<200, color: .kernelCode)], zeroPageFrame: 7)
  let six12 = series == "6.12"
  func bit(_ b: Int?) -> UInt64 { b.map { 1 << UInt64($0) } ?? 0 }
  // page_type encodings: 6.1 clears a bit below PAGE_TYPE_BASE, 6.12 stores a PGTY_ byte.
  let buddy: UInt32 = six12 ? 0xF000_0000 : 0xFFFF_FF7F
  let table: UInt32 = six12 ? 0xF200_0000 : 0xFFFF_FDFF
  let unmapped: UInt32 = 0xFFFF_FFFF  // _mapcount -1

  #expect(c.verdict(PageRecord(privateValue: 3, pageType: buddy, refcount: 0), frame: 8) == .freeBlock(order: 3))
  #expect(c.verdict(PageRecord(privateValue: 3, pageType: buddy), frame: 9) == .anomaly("misaligned buddy block"))
  #expect(c.verdict(PageRecord(privateValue: 40, pageType: buddy), frame: 0) == .anomaly("buddy order beyond MAX_ORDER"))
  let slab = six12 ? PageRecord(mapping: 0xffff_8880_0000_1000, pageType: 0xF500_0000) : PageRecord(flags: bit(l.pgSlab), mapping: 0xffff_8880_0000_1000)
  #expect(c.verdict(slab, frame: 5) == .color(.kernelHeap, []), "slab before anon/page cache")
  #expect(c.verdict(PageRecord(pageType: table), frame: 5) == .color(.pageTable, []))
  #expect(c.verdict(PageRecord(pageType: unmapped), frame: 7) == .color(.zero, []))
  #expect(c.verdict(PageRecord(flags: bit(l.pgReserved), pageType: unmapped), frame: 150) == .color(.kernelCode, .executable))
  #expect(c.verdict(PageRecord(pageType: unmapped, refcount: 0), frame: 150) == .color(.free, []), "freed image memory")
  #expect(c.verdict(PageRecord(flags: bit(l.pgReserved), pageType: unmapped), frame: 50) == .color(.reserved, []))
  #expect(c.verdict(PageRecord(flags: bit(l.pgDirty), mapping: 0xffff_8880_0000_2001, pageType: 0), frame: 5) == .color(.userData, [.mapped, .dirty]))
  #expect(c.verdict(PageRecord(mapping: 0xffff_8880_0000_2003, pageType: 1), frame: 5) == .color(.userData, [.mapped, .shared]), "KSM")
  #expect(c.verdict(PageRecord(mapping: 0xffff_8880_0000_3000, index: 42, pageType: unmapped), frame: 5) == .pageCache(mapping: 0xffff_8880_0000_3000, index: 42, []))
  #expect(c.verdict(PageRecord(flags: bit(l.pgLRU), mapping: 0xffff_8880_0000_4002, pageType: unmapped), frame: 5) == .color(.kernelOther, []), "movable non-LRU")
  #expect(c.verdict(PageRecord(compoundHead: 0xffff_ea00_0000_0041), frame: 5) == .tail(headPage: 0xffff_ea00_0000_0040))
  #expect(c.verdict(PageRecord(pageType: unmapped, refcount: 0), frame: 5) == .color(.free, []), "refcount 0: per-CPU free")
  #expect(c.verdict(PageRecord(pageType: unmapped, refcount: 2), frame: 5) == .color(.kernelOther, []))
}

@Test func layoutWithoutPageTypeRuleIsRefused() throws {
  var layout = try recordedLayout("6.1")
  layout.enums.removeValue(forKey: "kscope_page_type")
  layout.enums.removeValue(forKey: "pagetype")
  #expect(throws: LayoutError.self) { try PageStructLayout(layout: layout) }
}
