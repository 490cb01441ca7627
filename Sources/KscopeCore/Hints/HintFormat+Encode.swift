// MARK: - Writing

/// A region's worth of hints: the bytes to publish (the used prefix of the region) and what
/// had to be left out.
public struct EncodedHints: Sendable {
  public var bytes: [UInt8]
  public var partial: Bool
  /// One line per thing left out or cut, for the agent's log (also in the metadata).
  public var notes: [String]
}

extension HintFormat {
  /// Bytes reserved for the notes the encoder adds to the metadata when something is cut.
  static let notesReserve = 768

  /// Fits `content` into a region of `regionSize` bytes, as generation `generation` (even).
  ///
  /// Priorities when the region is too small: the header, kernel symbols and metadata always;
  /// then the frame table (the smaller of raw and runs; cut to its first runs if even that does
  /// not fit); then files, most resident first, the last one's extents cut to fit. Anything
  /// cut marks the region partial and adds a `partial.*` note. The output always passes
  /// `decode` (the fuzz tests check this), so the agent sanitises here what the reader would
  /// refuse: frames claimed twice lose their frame, unusable paths are dropped.
  public static func encode(
    _ content: HintContent, regionSize: Int, generation: UInt64
  ) throws(HintError) -> EncodedHints {
    guard generation % 2 == 0 else { throw .inconsistent("generation \(generation) is odd") }
    guard regionSize >= minRegionSize, regionSize <= maxRegionSize else {
      throw .oversized(what: "bytes of region", count: UInt64(max(0, regionSize)), limit: UInt64(maxRegionSize))
    }
    var notes: [String] = []
    var partial = content.incomplete

    // A directory slot for each section that may be written (the BTF's only when there is one).
    let slots = HintSectionKind.allCases.count - (content.btf == nil ? 1 : 0)
    let directoryEnd = headerSize + slots * directoryEntrySize
    let kernelAt = directoryEnd
    let fixedEnd = kernelAt + kernelSectionSize
    var meta = Array(content.metadata.prefix(maxMetadataEntries - 4)).filter {
      $0.key.utf8.count <= maxMetadataString && $0.value.utf8.count <= maxMetadataString
        && !$0.key.isEmpty
    }
    var seenKeys = Set<String>()
    meta = meta.filter { seenKeys.insert($0.key).inserted }
    let metaBase = meta.reduce(0) { $0 + 4 + $1.key.utf8.count + $1.value.utf8.count }
    let needed = fixedEnd + align8(metaBase + notesReserve)
    guard needed <= regionSize else {
      throw .oversized(what: "bytes of kernel hints and metadata", count: UInt64(needed), limit: UInt64(regionSize))
    }
    var space = regionSize - needed

    // Frame table. On disk a run holds at most 65536 frames, so long runs are split here.
    var frames = content.frames
    var framesEncoding = FrameTableEncoding.runs
    var diskRuns: [(entry: UInt16, length: UInt32)] = []
    if let table = frames {
      if table.totalFrames > maxFrames || table.frameCount > table.totalFrames {
        notes.append("partial.frames: table of \(table.totalFrames) frames not published (over the limit)")
        frames = nil
      } else {
        table.forEachRun { _, n, e in
          var left = n
          while left > 0 {
            let k = min(left, 1 << 16)
            diskRuns.append((e.rawValue, UInt32(k)))
            left -= k
          }
        }
        let rawBytes = framesHeaderSize + align8(2 * Int(table.frameCount))
        let runBytes = framesHeaderSize + align8(4 * diskRuns.count)
        if min(rawBytes, runBytes) <= space {
          framesEncoding = rawBytes < runBytes ? .raw : .runs
          space -= min(rawBytes, runBytes)
          if table.truncated {
            notes.append("partial.frames: the agent saw \(table.frameCount) of \(table.totalFrames) frames")
          }
        } else if space >= framesHeaderSize + 8 {
          let keep = (space - framesHeaderSize) / 4 & ~1
          diskRuns.removeLast(diskRuns.count - keep)
          var cut = FrameClassTable(totalFrames: table.totalFrames)
          for r in diskRuns { cut.append(r.entry, count: r.length) }
          frames = cut
          space -= framesHeaderSize + align8(4 * keep)
          notes.append(
            "partial.frames: the region holds \(cut.frameCount) of \(table.totalFrames) frames")
        } else {
          frames = nil
          notes.append("partial.frames: no room for the frame table")
        }
      }
    }

    // The kernel's BTF, whole or not at all, after the frame table and before the files: a
    // layout for a guest whose debug info nobody has is worth more than the names of files.
    var btf = content.btf
    if let b = btf {
      let bytes = btfHeaderSize + align8(b.data.count)
      if b.size == 0 || b.size > maxBTFBytes || b.data.isEmpty {
        btf = nil
        notes.append("partial.btf: a BTF blob of \(b.size) bytes is not publishable")
      } else if bytes <= space {
        space -= bytes
      } else {
        btf = nil
        notes.append("partial.btf: the kernel's BTF (\(b.data.count) bytes compressed) does not fit")
      }
    }

    // Files, most resident first, in two passes: first every file that fits with its coarse
    // extents (runs of resident file pages, no frames), because names and residency of many
    // files are worth more than the frames of a few; then, with what space is left, files get
    // their frame-level extents back (scattered frames can mean one extent per page).
    let candidates = content.files.filter {
      !$0.path.isEmpty && $0.path.utf8.count <= maxPathLength && !$0.extents.isEmpty
    }.sorted {
      $0.residentPages != $1.residentPages ? $0.residentPages > $1.residentPages : $0.path < $1.path
    }
    var files: [CachedFile] = []
    var fine: [CachedFile] = []
    var seenFiles = Set<HintSet.FileKey>()
    for f in candidates {
      guard seenFiles.insert(HintSet.FileKey(device: f.device, inode: f.inode)).inserted else { continue }
      let coarse = coarsened(f)
      let head = fileRecordHeaderSize + align8(f.path.utf8.count)
      let full = head + extentSize * coarse.extents.count
      if full <= space {
        files.append(coarse)
        fine.append(f)
        space -= full
      } else {
        if head + extentSize <= space {
          var cut = coarse
          cut.extents = Array(coarse.extents.prefix((space - head) / extentSize))
          cut.extentsTruncated = true
          files.append(cut)
          fine.append(cut)
          space -= head + extentSize * cut.extents.count
        }
        break
      }
    }
    var withoutFrames = 0
    for i in files.indices where fine[i].framesKnown && !files[i].extentsTruncated {
      let extra = extentSize * (fine[i].extents.count - files[i].extents.count)
      if extra <= space {
        files[i] = fine[i]
        space -= extra
      } else {
        withoutFrames += 1
      }
    }
    if files.count < candidates.count || files.last?.extentsTruncated == true {
      notes.append(
        "partial.files: the region holds \(files.count) of \(candidates.count) cached files"
          + (files.last?.extentsTruncated == true ? ", the last one cut" : ""))
    }
    if withoutFrames > 0 {
      notes.append("partial.file_frames: \(withoutFrames) files are published without their frames")
    }
    files = sanitizeFrames(files, totalFrames: frames?.totalFrames)

    if !notes.isEmpty { partial = true }
    for n in notes {
      guard let colon = n.firstIndex(of: ":") else { continue }
      let key = String(n[..<colon])
      // A note replaces an entry of the same key (e.g. carried over from an earlier set).
      meta.removeAll { $0.key == key }
      meta.append((key, String(n[n.index(after: colon)...].dropFirst())))
    }

    // Lay the sections out.
    var w = ByteWriter(capacity: regionSize - space)
    w.zeros(directoryEnd)
    var directory: [(HintSectionKind, UInt32, Int, Int, UInt64)] = []

    let kAt = w.count
    writeKernel(content.kernel, into: &w)
    directory.append((.kernel, sectionRequired, kAt, w.count - kAt, 1))

    if let t = frames {
      let at = w.count
      w.u64(t.totalFrames)
      w.u64(t.frameCount)
      w.u32(framesEncoding.rawValue)
      w.u32(0)
      w.u64(0)
      if framesEncoding == .raw {
        t.forEachRun { _, n, e in
          for _ in 0..<n { w.u16(e.rawValue) }
        }
      } else {
        for r in diskRuns {
          w.u16(r.entry)
          w.u16(UInt16(r.length - 1))
        }
      }
      w.align(8)
      let items = framesEncoding == .raw ? t.frameCount : UInt64(diskRuns.count)
      directory.append((.frames, t.truncated ? sectionTruncated : 0, at, w.count - at, items))
    }

    if let b = btf {
      let at = w.count
      w.u32(b.compression.rawValue)
      w.u32(0)
      w.u64(b.size)
      w.u64(UInt64(b.data.count))
      w.u64(b.checksum)
      w.raw(b.data)
      w.align(8)
      directory.append((.btf, 0, at, w.count - at, 1))
    }

    do {
      let at = w.count
      var anyCut = false
      for f in files {
        w.u64(f.inode)
        w.u64(f.size)
        w.u64(f.residentPages)
        w.u32(f.device)
        w.u16((f.framesKnown ? 1 : 0) | (f.extentsTruncated ? 2 : 0))
        w.u16(UInt16(f.path.utf8.count))
        w.u32(UInt32(f.extents.count))
        w.u32(0)
        w.raw(Array(f.path.utf8))
        w.align(8)
        for e in f.extents {
          w.u64(e.filePage)
          w.u32(e.pages)
          w.u32(0)
          w.u64(e.frame?.rawValue ?? noFrame)
        }
        anyCut = anyCut || f.extentsTruncated
      }
      let cut = anyCut || files.count < candidates.count
      directory.append((.files, cut ? sectionTruncated : 0, at, w.count - at, UInt64(files.count)))
    }

    do {
      let at = w.count
      for (k, v) in meta {
        w.u16(UInt16(k.utf8.count))
        w.u16(UInt16(v.utf8.count))
        w.raw(Array(k.utf8))
        w.raw(Array(v.utf8))
      }
      w.align(8)
      directory.append((.metadata, 0, at, w.count - at, UInt64(meta.count)))
    }
    precondition(w.count <= regionSize, "hint encoder overran its budget")

    var bytes = w.bytes
    func put(_ v: UInt64, _ n: Int, at o: Int) {
      for i in 0..<n { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
    for i in 0..<8 { bytes[i] = magic[i] }
    put(UInt64(version), 2, at: versionOffset)
    put(UInt64(headerSize), 2, at: headerSizeOffset)
    put(UInt64(partial ? flagPartial : 0), 4, at: flagsOffset)
    put(generation, 8, at: generationOffset)
    put(UInt64(regionSize), 8, at: regionSizeOffset)
    put(UInt64(bytes.count), 8, at: usedSizeOffset)
    put(UInt64(bitPattern: content.published), 8, at: publishedOffset)
    put(UInt64(directory.count), 4, at: sectionCountOffset)
    put(UInt64(content.pageSize), 4, at: pageSizeOffset)
    let release = utf8Prefix(content.kernelRelease, releaseCapacity)
    let build = Array(content.buildID.prefix(buildIDCapacity))
    put(UInt64(release.count), 1, at: releaseLengthOffset)
    put(UInt64(build.count), 1, at: buildIDLengthOffset)
    for (i, b) in release.enumerated() { bytes[releaseOffset + i] = b }
    for (i, b) in build.enumerated() { bytes[buildIDOffset + i] = b }
    for (i, d) in directory.enumerated() {
      let at = headerSize + i * directoryEntrySize
      put(UInt64(d.0.rawValue), 4, at: at)
      put(UInt64(d.1), 4, at: at + 4)
      put(UInt64(d.2), 8, at: at + 8)
      put(UInt64(d.3), 8, at: at + 16)
      put(d.4, 8, at: at + 24)
    }
    put(checksum(bytes[...]), 8, at: checksumOffset)
    return EncodedHints(bytes: bytes, partial: partial, notes: notes)
  }

  /// XXH64 of the used bytes with the checksum field read as zero. The generation is covered:
  /// a copy that mixes two publications fails the checksum even if the generation looked even.
  static func checksum(_ used: ArraySlice<UInt8>) -> UInt64 {
    let base = used.startIndex
    var h = XXH64()
    h.update(used[base..<(base + checksumOffset)])
    h.update([UInt8](repeating: 0, count: 8))
    h.update(used[(base + checksumOffset + 8)...])
    return h.finish()
  }

  static func writeKernel(_ k: KernelSymbolHints, into w: inout ByteWriter) {
    var known: UInt64 = 0
    let values: [UInt64?] = [
      k.kaslrOffset, k.text?.rawValue, k.physBase, k.pageOffsetBase?.rawValue,
      k.vmemmapBase?.rawValue, k.vmallocBase?.rawValue,
    ]
    for (i, v) in values.enumerated() where v != nil { known |= 1 << UInt64(i) }
    if k.vmcoreinfo != nil { known |= 1 << 6 }
    if k.pagingLevels != nil { known |= 1 << 7 }
    w.u64(known)
    for v in values { w.u64(v ?? 0) }
    w.u64(k.vmcoreinfo?.address.rawValue ?? 0)
    w.u64(k.vmcoreinfo?.size ?? 0)
    w.u64(UInt64(k.pagingLevels ?? 0))
    w.zeros(kernelSectionSize - 80)
  }

  /// At most `n` bytes of UTF-8, cut at a character boundary.
  static func utf8Prefix(_ s: String, _ n: Int) -> [UInt8] {
    var out: [UInt8] = []
    for c in s.unicodeScalars {
      let b = Array(String(c).utf8)
      if out.count + b.count > n { break }
      out += b
    }
    return out
  }

  /// A file's extents without frames, merged into runs of consecutive file pages.
  public static func coarsened(_ f: CachedFile) -> CachedFile {
    var out = f
    out.framesKnown = false
    out.extents = []
    for e in f.extents {
      if let last = out.extents.last, last.filePage + UInt64(last.pages) == e.filePage,
        UInt64(last.pages) + UInt64(e.pages) <= UInt64(UInt32.max)
      {
        out.extents[out.extents.count - 1].pages += e.pages
      } else {
        out.extents.append(FileExtent(filePage: e.filePage, pages: e.pages))
      }
    }
    return out
  }

  /// Drops frames the reader would refuse: past the frame table, or claimed by two file pages
  /// (a page evicted and reused while the agent looked).
  static func sanitizeFrames(_ files: [CachedFile], totalFrames: UInt64?) -> [CachedFile] {
    let limit = totalFrames ?? (1 << 52)
    var out = files
    var claims: [(start: UInt64, end: UInt64, file: Int, extent: Int)] = []
    for (fi, f) in out.enumerated() {
      for (ei, e) in f.extents.enumerated() {
        guard let fr = e.frame else { continue }
        if !f.framesKnown || fr.rawValue >= limit || UInt64(e.pages) > limit - fr.rawValue {
          out[fi].extents[ei].frame = nil
          continue
        }
        claims.append((fr.rawValue, fr.rawValue + UInt64(e.pages), fi, ei))
      }
    }
    claims.sort { $0.start < $1.start }
    var end: UInt64 = 0
    var last: (Int, Int)? = nil
    for c in claims {
      if c.start < end {
        out[c.file].extents[c.extent].frame = nil
        if let (f, e) = last { out[f].extents[e].frame = nil }
      } else {
        last = (c.file, c.extent)
      }
      end = max(end, c.end)
    }
    return out
  }
}
