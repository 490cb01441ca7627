import KscopeSnapshot
import Testing

@testable import KscopeClone

@Suite struct RAMLayoutTests {
  typealias S = GuestRAMRegion

  @Test func q35SplitTranslatesBothWays() throws {
    // 3 GiB guest: 2 GiB low, 1 GiB above 4 GiB, one file.
    let l = try RAMLayout(segments: [
      S(guestPhysicalStart: 0, size: 2 << 30, fileOffset: 0),
      S(guestPhysicalStart: 4 << 30, size: 1 << 30, fileOffset: 2 << 30),
    ])
    #expect(l.fileSize == 3 << 30)
    #expect(l.frameCount == (5 << 30) / 4096)
    #expect(l.fileOffset(frame: 5) == 5 * 4096)
    #expect(l.fileOffset(frame: (3 << 30) / 4096) == nil)  // the PCI hole
    #expect(l.fileOffset(frame: (4 << 30) / 4096) == 2 << 30)
    #expect(l.frame(fileOffset: 2 << 30) == (4 << 30) / 4096)
    #expect(l.fileRuns(FrameRange(start: (2 << 30) / 4096 - 1, count: 3 + (2 << 30) / 4096)).map(\.count) == [1, 2])
  }

  @Test(arguments: [
    [S](),
    [S(guestPhysicalStart: 0, size: 100, fileOffset: 0)],  // not page-aligned
    [S(guestPhysicalStart: 0, size: 8192, fileOffset: UInt64.max - 4095)],  // overflows
    [S(guestPhysicalStart: 1 << 52, size: 4096, fileOffset: 0)],  // beyond 2^52
    [S(guestPhysicalStart: 8192, size: 8192, fileOffset: 0), S(guestPhysicalStart: 4096, size: 4096, fileOffset: 8192)],
  ])
  func hostileSegmentsAreRefused(segments: [S]) {
    #expect(throws: RAMLayout.LayoutError.self) { try RAMLayout(segments: segments) }
  }
}
