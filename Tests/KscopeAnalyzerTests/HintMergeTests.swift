import KscopeCore
import Testing

@testable import KscopeAnalyzer

/// A hint region as the agent would publish it, read back through the validating reader.
func hintSet(buildID: [UInt8], frames: [UInt16], files: [CachedFile]) throws -> HintSet {
  var symbols = KernelSymbolHints()
  symbols.kaslrOffset = 0x3400000
  let content = HintContent(
    kernelRelease: "6.1.0-test", buildID: buildID, published: 1_764_130_000, kernel: symbols,
    frames: FrameClassTable(entries: frames), files: files)
  let encoded = try HintFormat.encode(content, regionSize: 1 << 20, generation: 8)
  // The region is the whole BAR: what the agent wrote, then zeros.
  return try HintFormat.decode(encoded.bytes + [UInt8](repeating: 0, count: (1 << 20) - encoded.bytes.count))
}

@Test func hintsFillGapsNamePathsAndCountDisagreements() throws {
  // Host: free, page-cache (inode 12), unknown, user-data, slab.
  let host = ColorMap(
    header: ColorMapHeader(sources: .hostIntrospection, kernelBuildID: "0a0b"),
    entries: [FrameEntry(.free), FrameEntry(.pageCache), FrameEntry(.unknown, .anomaly), FrameEntry(.userData), FrameEntry(.kernelHeap)].map(\.rawValue),
    extents: [AttributeExtent(start: 1, count: 1, file: FileIdentity(device: 0x0fe0_0000, inode: 12, index: 3))])
  // Hints: free, page-cache, page-table (fills the unknown), free (disagrees: anon), slab.
  let hints = try hintSet(
    buildID: [0x0a, 0x0b],
    frames: [FrameEntry(.free), FrameEntry(.pageCache), FrameEntry(.pageTable), FrameEntry(.free), FrameEntry(.kernelHeap)].map(\.rawValue),
    files: [CachedFile(path: "/data/site/index.html", device: 0x0fe0_0000, inode: 12, size: 40960, residentPages: 1, extents: [FileExtent(filePage: 3, pages: 1)], framesKnown: false, extentsTruncated: false)])
  let (merged, report) = HintMerge.merge(host, hints: hints)
  #expect(report.rejected == nil)
  #expect(report.generation == 8)
  #expect(report.compared == 4)
  #expect(report.agreed == 3)
  #expect(report.disagreements == ["free->anon": 1])
  #expect(report.decidedByHints == 1)
  #expect(report.namedExtents == 1)
  // The host stays the authority; the frame it could not class takes the hint, flagged.
  #expect(merged.entry(at: 3)?.color == .userData)
  #expect(merged.entry(at: 3)?.flags.contains(.anomaly) == true)
  #expect(merged.entry(at: 2)?.color == .pageTable)
  #expect(merged.entry(at: 2)?.flags.contains(.hinted) == true)
  #expect(merged.extents.first?.path == "/data/site/index.html")
  #expect(merged.header.sources.contains(.guestHints))
}

@Test func hintsFromAnotherKernelAreSetAside() throws {
  let host = ColorMap(header: ColorMapHeader(kernelBuildID: "0a0b"), entries: [FrameEntry(.unknown).rawValue])
  let hints = try hintSet(buildID: [0xff], frames: [FrameEntry(.free).rawValue], files: [])
  let (merged, report) = HintMerge.merge(host, hints: hints)
  #expect(report.rejected?.contains("ff") == true)
  #expect(merged.entries == host.entries)
  #expect(!merged.header.sources.contains(.guestHints))
}

/// The build check has no way around it: hints without a build id, or memory whose vmcoreinfo
/// names none, are set aside with the reason, never merged unchecked.
@Test func hintsWithoutABuildCheckAreSetAside() throws {
  let host = ColorMap(header: ColorMapHeader(kernelBuildID: "0a0b"), entries: [FrameEntry(.unknown).rawValue])
  let anonymous = try hintSet(buildID: [], frames: [FrameEntry(.free).rawValue], files: [])
  let (m1, r1) = HintMerge.merge(host, hints: anonymous)
  #expect(r1.rejected?.contains("no kernel build id") == true)
  #expect(m1.entries == host.entries)
  #expect(!m1.header.sources.contains(.guestHints))

  let unchecked = ColorMap(header: ColorMapHeader(kernelBuildID: nil), entries: [FrameEntry(.unknown).rawValue])
  let hints = try hintSet(buildID: [0x0a, 0x0b], frames: [FrameEntry(.free).rawValue], files: [])
  let (m2, r2) = HintMerge.merge(unchecked, hints: hints)
  #expect(r2.rejected?.contains("no BUILD-ID") == true)
  #expect(m2.entries == unchecked.entries)
  let (_, r3) = HintMerge.merge(ColorMap(header: ColorMapHeader(kernelBuildID: ""), entries: []), hints: hints)
  #expect(r3.rejected != nil)
}
