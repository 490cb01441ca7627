import KscopeCore
import Testing

@Suite struct HintFormatTests {
  @Test func roundTrip() throws {
    let c = sampleContent()
    let bytes = try region(c, generation: 42)
    let h = try HintFormat.decode(bytes)
    #expect(h.generation == 42)
    #expect(h.regionSize == 1 << 16)
    #expect(!h.partial)
    #expect(h.kernelRelease == c.kernelRelease)
    #expect(h.buildID == c.buildID)
    #expect(h.buildIDHex == "000102030405060708090a0b0c0d0e0f10111213")
    #expect(h.published == c.published)
    #expect(h.kernel == c.kernel)
    #expect(h.frames == c.frames)
    #expect(h.files.count == c.files.count)
    for f in c.files { #expect(h.file(device: f.device, inode: f.inode) == f) }
    #expect(h.metadata("roots") == "/data,/")
    #expect(h.metadata.count == 2)
  }

  /// Decoding from a copy that shrinks (the retry after a torn read): every section's bytes are
  /// released once read, none is read after its release, and the hints are the same.
  @Test func releasedRangesAreNeverReadAgainAndCoverEverySection() throws {
    var c = sampleContent()
    // 500,000 runs of 4 bytes: two chunks of the frame table (1 MiB each).
    c.frames = FrameClassTable(entries: (0..<1_500_000).map { FrameEntry($0 / 3 % 2 == 0 ? .free : .userData).rawValue })
    let bytes = try region(c, size: 4 << 20, generation: 8)
    var released = [Bool](repeating: false, count: bytes.count)
    var touchedAfterRelease: [Int] = []
    let h = try HintFormat.decode(
      size: bytes.count,
      read: { (offset, count) throws(HintError) -> [UInt8] in
        if released[offset..<(offset + count)].contains(true) { touchedAfterRelease.append(offset) }
        return Array(bytes[offset..<(offset + count)])
      },
      release: { offset, count in
        for i in offset..<(offset + count) { released[i] = true }
      })
    #expect(touchedAfterRelease.isEmpty, "read after release at \(touchedAfterRelease.prefix(5))")
    let plain = try HintFormat.decode(bytes)
    #expect(h.frames == plain.frames)
    #expect(h.files.count == plain.files.count)
    #expect(h.kernel == plain.kernel)
    #expect(h.metadata.count == plain.metadata.count)
    // Everything after the header and directory that a section holds was released: the frame
    // table alone is over 1 MiB here.
    let releasedBytes = released.lazy.filter { $0 }.count
    #expect(releasedBytes > 1 << 20, "only \(releasedBytes) bytes released")
    #expect(!released[0..<HintFormat.headerSize].contains(true))
  }

  @Test func unknownKernelFieldsStayUnknown() throws {
    var c = sampleContent()
    c.kernel = KernelSymbolHints()
    c.kernel.text = KernelVirtualAddress(HintFormat.linkedText)
    let h = try HintFormat.decode(try region(c))
    #expect(h.kernel.text == KernelVirtualAddress(HintFormat.linkedText))
    #expect(h.kernel.kaslrOffset == nil && h.kernel.pageOffsetBase == nil && h.kernel.vmcoreinfo == nil)
  }

  @Test func lookups() throws {
    let c = sampleContent()
    let h = try HintFormat.decode(try region(c))
    var entries: [UInt16] = []
    c.frames!.forEachRun { _, n, e in for _ in 0..<n { entries.append(e.rawValue) } }
    for pfn in [0, 1, 52, 53, 1000, 4095] {
      #expect(h.frameEntry(PageFrameNumber(UInt64(pfn)))?.rawValue == entries[pfn])
    }
    #expect(h.frameEntry(PageFrameNumber(4096)) == nil)
    #expect(h.file(device: (254 << 20) | 1, inode: 14)?.path == "/data/site/file-2.html")
    #expect(h.file(device: 3, inode: 14) == nil)
    #expect(h.files(inode: 13).map(\.path) == ["/data/site/file-1.html"])
    let totals = h.frames!.colorTotals()
    #expect(totals.reduce(0, +) == 4096)
  }

  @Test func rawEncodingWhenRunsWouldBeLarger() throws {
    // Alternating entries: runs need 4 bytes per frame, raw 2.
    let entries = (0..<1000).map { FrameEntry($0 % 2 == 0 ? .free : .userData).rawValue }
    var c = sampleContent()
    c.frames = FrameClassTable(entries: entries)
    let bytes = try region(c)
    let h = try HintFormat.decode(bytes)
    #expect(h.frames?.frameCount == 1000)
    #expect(h.frames?.entry(PageFrameNumber(999))?.color == .userData)
    let e = try HintFormat.encode(c, regionSize: 1 << 16, generation: 0)
    #expect(e.bytes.count < 2 * 1000 + 4096)  // raw, not runs
  }

  @Test func longRunsAreSplitOnDisk() throws {
    var t = FrameClassTable(totalFrames: 300_000)
    t.append(FrameEntry(.free).rawValue, count: 200_000)
    t.append(FrameEntry(.userData).rawValue, count: 100_000)
    var c = sampleContent()
    c.frames = t
    let h = try HintFormat.decode(try region(c))
    #expect(h.frames == t)
    #expect(h.frameEntry(PageFrameNumber(199_999))?.color == .free)
    #expect(h.frameEntry(PageFrameNumber(200_000))?.color == .userData)
  }

  @Test func partialWhenTheRegionIsTooSmall() throws {
    // 64 Ki frames alternating: neither encoding fits 4 KiB, so the table is cut.
    var c = sampleContent(files: 50)
    c.frames = FrameClassTable(
      entries: (0..<65536).map { FrameEntry($0 % 2 == 0 ? .free : .kernelHeap).rawValue })
    let e = try HintFormat.encode(c, regionSize: 4096, generation: 8)
    #expect(e.partial)
    #expect(e.notes.contains { $0.hasPrefix("partial.frames") })
    let h = try HintFormat.decode(e.bytes + [UInt8](repeating: 0, count: 4096 - e.bytes.count))
    #expect(h.partial)
    #expect(h.frames!.truncated && h.frames!.frameCount > 0 && h.frames!.totalFrames == 65536)
    #expect(h.metadata("partial.frames") != nil)
    #expect(h.files.count < 50)

    // Frames fit, files do not: the last file kept is cut, the most resident come first.
    var d = sampleContent(frames: 64, files: 200)
    d.files[199].residentPages += 0  // keep the shape
    let e2 = try HintFormat.encode(d, regionSize: 8192, generation: 2)
    let h2 = try HintFormat.decode(e2.bytes + [UInt8](repeating: 0, count: 8192 - e2.bytes.count))
    #expect(h2.partial && h2.files.count > 0 && h2.files.count < 200)
    #expect(h2.metadata("partial.files") != nil)
    let counts = h2.files.map(\.residentPages)
    #expect(counts == counts.sorted(by: >))
  }

  @Test func incompleteContentIsPartial() throws {
    var c = sampleContent()
    c.incomplete = true
    #expect(try HintFormat.decode(try region(c)).partial)
  }

  @Test func framesClaimedTwiceLoseTheirFrames() throws {
    var c = sampleContent()
    c.files[2].extents[0].frame = c.files[0].extents[0].frame
    let h = try HintFormat.decode(try region(c))
    #expect(h.file(device: c.files[0].device, inode: c.files[0].inode)!.extents[0].frame == nil)
    #expect(h.file(device: c.files[2].device, inode: c.files[2].inode)!.extents[0].frame == nil)
    #expect(h.file(device: c.files[2].device, inode: c.files[2].inode)!.extents[1].frame != nil)
  }

  @Test func regionTooSmallForTheBasicsIsAnError() {
    #expect(throws: HintError.self) { try HintFormat.encode(sampleContent(), regionSize: 1024, generation: 0) }
    #expect(throws: HintError.self) { try HintFormat.encode(sampleContent(), regionSize: 8192, generation: 1) }
  }
}

/// One test per class of bad region: each is refused with its own error.
@Suite struct HintCorruptionTests {
  let good: [UInt8]
  init() throws { good = try region(sampleContent(), generation: 6) }

  func error(_ bytes: [UInt8]) -> HintError? {
    do {
      _ = try HintFormat.decode(bytes)
      return nil
    } catch { return error }
  }

  @Test func empty() {
    #expect(error([UInt8](repeating: 0, count: 1 << 16)) == .empty)
    #expect(error([]) != nil)
  }

  @Test func foreign() {
    var b = good
    b[1] = 0x4C
    #expect(error(b) == .notAHintRegion)
  }

  @Test func version() {
    var b = good
    poke(&b, 8, 2, width: 2)
    #expect(error(b) == .unsupportedVersion(2))
  }

  @Test func truncated() {
    #expect(error(Array(good.prefix(100))) == .truncated(size: 100, expected: 256))
    #expect(error(Array(good.prefix(5000))) == .truncated(size: 5000, expected: 1 << 16))
  }

  @Test func oversized() {
    #expect(error(good + [0]) == .trailingBytes(size: (1 << 16) + 1, expected: 1 << 16))
    var b = good
    poke(&b, 24, 1 << 40)
    #expect(error(b) == .oversized(what: "bytes of region", count: 1 << 40, limit: 1 << 30))
    // A section count over the limit, behind a valid checksum.
    var c = good
    poke(&c, 56, 1000, width: 4)
    if case .oversized(let what, _, _) = error(HintDamage.reseal(c)) {
      #expect(what == "sections")
    } else {
      Issue.record("expected oversized sections")
    }
  }

  @Test func staleWhileWriting() {
    var b = good
    poke(&b, 16, 7)
    #expect(error(b) == .staleWriting(generation: 7))
  }

  @Test func staleWhenTheGenerationMoves() {
    var reads = 0
    let gens: [UInt64] = [6, 8]
    #expect(throws: HintError.staleChanged(before: 6, after: 8)) {
      try HintReader.readConsistent(
        generation: { () throws(HintError) -> UInt64 in
          defer { reads += 1 }
          return gens[reads]
        }, copy: { () throws(HintError) -> [UInt8] in good })
    }
    // A torn copy: the generation read before and after agree, but the copy has another one.
    var torn = good
    poke(&torn, 16, 4)
    #expect(throws: HintError.self) {
      try HintReader.readConsistent(
        generation: { () throws(HintError) -> UInt64 in 6 }, copy: { () throws(HintError) -> [UInt8] in torn })
    }
    let ok = try? HintReader.readConsistent(
      generation: { () throws(HintError) -> UInt64 in 6 }, copy: { () throws(HintError) -> [UInt8] in good })
    #expect(ok?.generation == 6)
  }

  @Test func checksum() {
    var b = good
    b[700] ^= 0x10
    guard case .checksumMismatch = error(b) else {
      Issue.record("expected a checksum mismatch")
      return
    }
  }

  @Test func malformedBehindAValidChecksum() {
    var b = good
    poke(&b, 256 + 4, 0x80, width: 4)  // unknown flags on the first section
    guard case .malformed = error(HintDamage.reseal(b)) else {
      Issue.record("expected malformed")
      return
    }
    var m = good
    poke(&m, 256, 77, width: 4)  // a required section of an unknown kind
    guard case .malformed = error(HintDamage.reseal(m)) else {
      Issue.record("expected malformed (unknown required section)")
      return
    }
  }

  @Test func inconsistentBehindAValidChecksum() throws {
    // _text below the kernel map: the kernel section starts right after the directory.
    let kernelAt = 256 + 4 * 32
    var b = good
    poke(&b, kernelAt + 16, 0x1000)
    guard case .inconsistent = error(HintDamage.reseal(b)) else {
      Issue.record("expected inconsistent (_text)")
      return
    }
    // Truncated section without the partial flag.
    var t = good
    poke(&t, 256 + 32 + 4, 2, width: 4)
    guard case .inconsistent = error(HintDamage.reseal(t)) else {
      Issue.record("expected inconsistent (truncated, not partial)")
      return
    }
    // Two files claiming the same frame, written by a forger (the encoder refuses to).
    var c = sampleContent()
    c.files[2].extents[0].frame = c.files[0].extents[0].frame
    let forged = try forgedRegion(c)
    guard case .inconsistent = error(forged) else {
      Issue.record("expected inconsistent (a frame claimed twice)")
      return
    }
  }

  /// Encodes `c` without the encoder's sanitising, by patching frames into a good encoding.
  func forgedRegion(_ c: HintContent) throws -> [UInt8] {
    var b = try region(sampleContent())
    let h = try HintFormat.decode(b)
    let target = c.files[2].extents[0].frame!.rawValue
    // Find file-2's first extent frame (100 + 128 = 228) in the bytes and overwrite it.
    let old = h.file(device: c.files[2].device, inode: c.files[2].inode)!.extents[0].frame!.rawValue
    for i in stride(from: 256, to: b.count - 8, by: 8) where b[i..<(i + 8)].elementsEqual(le(old)) {
      poke(&b, i, target)
    }
    return HintDamage.reseal(b)
  }

  func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
}
