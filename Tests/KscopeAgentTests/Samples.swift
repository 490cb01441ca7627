import KscopeCore

/// Hint content that exercises every section: kernel symbols, a frame table with real
/// structure, files with and without frames, metadata.
func sampleContent(frames frameCount: Int = 4096, files fileCount: Int = 5) -> HintContent {
  var k = KernelSymbolHints()
  k.kaslrOffset = 0x2_4000_000
  k.text = KernelVirtualAddress(HintFormat.linkedText + 0x2_4000_000)
  k.physBase = 0x1_c000_000
  k.pageOffsetBase = KernelVirtualAddress(0xff32_d4a1_c000_0000)
  k.vmemmapBase = KernelVirtualAddress(0xffd1_4000_0000_0000)
  k.vmallocBase = KernelVirtualAddress(0xffa0_0000_0000_0000)
  k.vmcoreinfo = (GuestPhysicalAddress(0x1_0c66_000), 1024)
  k.pagingLevels = 5
  var entries: [UInt16] = []
  let colors: [Color] = [.reserved, .kernelCode, .kernelData, .free, .pageCache, .userData, .kernelHeap]
  var i = 0
  while entries.count < frameCount {
    let c = colors[i % colors.count]
    let n = 1 + (i * 37) % 53
    for j in 0..<n where entries.count < frameCount {
      entries.append(FrameEntry(c, j % 3 == 0 ? [.mapped] : []).rawValue)
    }
    i += 1
  }
  var files: [CachedFile] = []
  for f in 0..<fileCount {
    let known = f % 2 == 0
    var extents: [FileExtent] = []
    var page: UInt64 = 0
    var resident: UInt64 = 0
    for e in 0..<(1 + f) {
      let pages = UInt32(1 + e)
      extents.append(
        FileExtent(
          filePage: page, pages: pages,
          frame: known ? PageFrameNumber(UInt64(100 + 64 * f + 8 * e)) : nil))
      page += UInt64(pages) + 2
      resident += UInt64(pages)
    }
    files.append(
      CachedFile(
        path: "/data/site/file-\(f).html", device: (254 << 20) | 1, inode: UInt64(12 + f),
        size: page * 4096, residentPages: resident, extents: extents, framesKnown: known))
  }
  return HintContent(
    kernelRelease: "6.1.0-56-cloud-amd64", buildID: Array(0..<20), published: 1_790_000_000,
    kernel: k, frames: FrameClassTable(entries: entries), files: files,
    metadata: [("agent.version", "1"), ("roots", "/data,/")])
}

/// Writes `v` little-endian at `offset`.
func poke(_ bytes: inout [UInt8], _ offset: Int, _ v: UInt64, width: Int = 8) {
  for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
}

/// A region: the encoded bytes padded to the region size (what the agent leaves in the BAR).
func region(_ content: HintContent, size: Int = 1 << 16, generation: UInt64 = 2) throws -> [UInt8] {
  let e = try HintFormat.encode(content, regionSize: size, generation: generation)
  return e.bytes + [UInt8](repeating: 0, count: size - e.bytes.count)
}
