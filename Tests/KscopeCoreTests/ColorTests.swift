import Testing

@testable import KscopeCore

@Test func colorNamesAreStableAndRoundTrip() {
  let expected = [
    "unknown", "free", "zero", "kernel-code", "kernel-data", "page-table", "kernel-heap",
    "page-cache", "user-code", "user-data", "kernel-other", "reserved",
  ]
  #expect(Color.allCases.map(\.name) == expected)
  for c in Color.allCases {
    #expect(Color(name: c.name) == c)
    #expect(Int(c.rawValue) < Color.codeSpace)
  }
  #expect(Color(name: "Free") == nil)
  #expect(Color.free.cloneAction == .allocateZeroed)
  #expect(Color.pageCache.cloneAction == .prefetchFileOrder)
}

@Test func frameEntryPacksColorAndFlags() {
  let e = FrameEntry(.pageCache, [.mapped, .dirty, .anomaly])
  #expect(e.color == .pageCache)
  #expect(e.flags == [.mapped, .dirty, .anomaly])
  #expect(e.rawValue & 0x1F == 7)
  #expect(FrameEntry(rawValue: 0).color == .unknown)
  #expect(PageFlags(names: ["mapped", "huge"]) == [.mapped, .huge])
  #expect(PageFlags(names: ["nope"]) == nil)
  // Flags never spill into the color bits.
  for (f, _) in PageFlags.named { #expect(f.rawValue & 0x1F == 0) }
}
