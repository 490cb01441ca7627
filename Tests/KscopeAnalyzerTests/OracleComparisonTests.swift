import KscopeCore
import KscopeLayout
import Testing

@testable import KscopeAnalyzer

/// A small guest as the kernel's flags see it: frame -> kpageflags, with an iomem image of
/// code at frames 10..<12 and data at 12..<14, RAM 0..<32.
private let code = KernelImageRange(frames: 10..<12, color: .kernelCode)
private let data = KernelImageRange(frames: 12..<14, color: .kernelData)
private let kernelFlags: [UInt64] = [
  KPF.reserved,  // 0: firmware
  KPF.buddy, 0, 0, 0,  // 1-4: a free block's head, then its flagless rest
  KPF.slab, KPF.pgtable, KPF.anon | KPF.lru | KPF.mmap, KPF.lru | KPF.uptodate,  // 5-8
  KPF.zeroPage | KPF.reserved,  // 9: the zero page
  KPF.reserved, KPF.reserved, KPF.reserved, KPF.reserved,  // 10-13: the image
  KPF.compoundHead | KPF.slab, KPF.compoundTail,  // 14-15: 6.12 slab marks only the head
  KPF.compoundHead, KPF.compoundTail,  // 16-17: a flagless compound allocation (kernel-other)
  0,  // 18: flagless, refcount 0 (per-CPU free) to the analyzer
  0,  // 19: flagless, allocated
]
private let agreeingColors: [Color] = [
  .reserved, .free, .free, .free, .free, .kernelHeap, .pageTable, .userData, .pageCache, .zero,
  .kernelCode, .kernelCode, .kernelData, .kernelData, .kernelHeap, .kernelHeap, .kernelOther, .kernelOther,
  .free, .kernelOther,
]

private func compare(_ colors: [Color]) -> OracleComparison {
  OracleComparison(
    entries: colors.map { FrameEntry($0).rawValue }, flags: kernelFlags, kernelImage: [code, data], ram: [0..<32])
}

private func result(_ c: OracleComparison, _ k: OracleClass) -> OracleComparison.ClassResult {
  c.classes.first { $0.oracleClass == k }!
}

@Test func oracleAgreementIsCompleteInBothDirections() {
  let c = compare(agreeingColors)
  #expect(c.comparedFrames == 20)
  for r in c.classes {
    #expect(r.frames > 0, "\(r.oracleClass)")
    #expect(r.recall == 1 && r.precision == 1, "\(r.oracleClass): \(r)")
  }
  // A free block's tails carry no flags: only its head is the kernel's "free".
  #expect(result(c, .free).frames == 1)
  // Frames 2-4, 18 and 19 have no flags at all: the kernel names no class for them.
  #expect(c.unnamed == [.free: 4, .kernelOther: 1])
  #expect(result(c, .free).unnamed == 4)
  #expect(result(c, .slab).frames == 3)
  #expect(result(c, .kernelOther).frames == 2)
  #expect(c.matrix[.kernelCode] == [.kernelCode: 2])
}

@Test func oracleCountsMissesAndMisplacementsSeparately() {
  var colors = agreeingColors
  colors[7] = .unknown  // anon the analyzer could not class: a recall miss only
  colors[5] = .free  // slab called free: a slab miss and a free misplacement
  colors[0] = .kernelData  // firmware called kernel data
  let c = compare(colors)
  #expect(result(c, .anon).recall == 0)
  #expect(result(c, .anon).extra == 0)
  #expect(result(c, .slab).agreeing == 2 && result(c, .slab).frames == 3)
  #expect(result(c, .free).extra == 1)
  #expect(result(c, .free).precision == 1.0 / 2.0)  // 1 agreeing (the head), 1 misplaced
  #expect(result(c, .kernelData).extra == 1)
  #expect(result(c, .reserved).recall == 0)
  #expect(c.matrix[.slab]?[.free] == 1)
}

/// A deliberately broken rule fails the comparison: the analyzer's real rules on crafted
/// struct pages agree with the kernel's flags for them; the same rules with the kernel image
/// placed one frame off, or with page tables read as slab, do not.
@Test(arguments: ["6.1", "6.12"])
func brokenRulesFailTheOracle(series: String) throws {
  let l = try PageStructLayout(layout: try recordedLayout(series))
  let six12 = series == "6.12"
  let table: UInt32 = six12 ? 0xF200_0000 : 0xFFFF_FDFF
  let slab = six12 ? PageRecord(pageType: 0xF500_0000) : PageRecord(flags: 1 << UInt64(l.pgSlab!))
  let reserved = PageRecord(flags: 1 << UInt64(l.pgReserved))
  // Frames 0-7: reserved, code, code, data, page table, slab, page cache, anon.
  let records = [
    reserved, reserved, reserved, reserved, PageRecord(pageType: table), slab,
    PageRecord(mapping: 0xffff_8880_0000_3000, index: 1), PageRecord(mapping: 0xffff_8880_0000_2001, pageType: 0),
  ]
  let flags: [UInt64] = [
    KPF.reserved, KPF.reserved, KPF.reserved, KPF.reserved, KPF.pgtable, KPF.slab, KPF.lru, KPF.anon | KPF.mmap,
  ]
  let image = [KernelImageRange(frames: 1..<3, color: .kernelCode), KernelImageRange(frames: 3..<4, color: .kernelData)]
  func colors(_ c: PageClassifier) -> [UInt16] {
    records.enumerated().map { f, r in
      switch c.verdict(r, frame: UInt64(f)) {
      case .color(let color, let fl): FrameEntry(color, fl).rawValue
      case .pageCache(_, _, let fl): FrameEntry(.pageCache, fl).rawValue
      default: FrameEntry(.unknown, .anomaly).rawValue
      }
    }
  }
  func perfect(_ c: OracleComparison) -> Bool {
    c.classes.allSatisfy { $0.agreeing == $0.frames && $0.extra == 0 }
  }
  let right = PageClassifier(layout: l, kernelImage: image, zeroPageFrame: nil)
  #expect(perfect(OracleComparison(entries: colors(right), flags: flags, kernelImage: image)))

  let shifted = image.map { KernelImageRange(frames: ($0.frames.lowerBound - 1)..<($0.frames.upperBound - 1), color: $0.color) }
  let offByOne = OracleComparison(
    entries: colors(PageClassifier(layout: l, kernelImage: shifted, zeroPageFrame: nil)), flags: flags, kernelImage: image)
  #expect(!perfect(offByOne))
  #expect(result(offByOne, .kernelCode).extra == 1)  // frame 0, firmware, called code
  #expect(result(offByOne, .kernelData).recall == 0)

  var wrong = l
  wrong.encoding = six12 ? .topByte([.slab: 0xF2]) : .clearedBit(base: 0xF000_0000, bits: [.slab: 0x200])
  let tablesAsSlab = OracleComparison(
    entries: colors(PageClassifier(layout: wrong, kernelImage: image, zeroPageFrame: nil)), flags: flags, kernelImage: image)
  #expect(result(tablesAsSlab, .pageTable).recall == 0)
  #expect(result(tablesAsSlab, .slab).precision < 1)
}

/// The README's table is this output, row for row.
@Test func oracleTableIsMarkdown() {
  let table = OracleComparison.markdownTable([("6.1 web", compare(agreeingColors))])
  let lines = table.split(separator: "\n")
  #expect(lines.count == 3)
  #expect(lines[0] == "| guest | free | slab | page-table | anon | page-cache | kernel-code | kernel-data | zero | reserved | kernel-other | misplaced | no kernel class |")
  #expect(lines[2] == "| 6.1 web | 1/1 | 3/3 | 1/1 | 1/1 | 1/1 | 2/2 | 2/2 | 1/1 | 1/1 | 2/2 | 0 | 5 (free 4, kernel-other 1) |")
}
