// MARK: - Reading

/// Bounds-checked reads that fail as `HintError.malformed`, naming the field.
struct HintFields {
  let r: ByteReader
  /// The region offset of the first byte held: fields are named and found by their offset in
  /// the region, whichever piece of it was read.
  let base: Int
  init(_ bytes: [UInt8], base: Int = 0) {
    r = ByteReader(bytes)
    self.base = base
  }

  func u8(_ at: Int, _ what: String) throws(HintError) -> UInt8 {
    do { return try r.u8(at: at - base) } catch { throw .malformed("\(what) at \(at) is out of bounds") }
  }
  func u16(_ at: Int, _ what: String) throws(HintError) -> UInt16 {
    do { return try r.u16(at: at - base) } catch { throw .malformed("\(what) at \(at) is out of bounds") }
  }
  func u32(_ at: Int, _ what: String) throws(HintError) -> UInt32 {
    do { return try r.u32(at: at - base) } catch { throw .malformed("\(what) at \(at) is out of bounds") }
  }
  func u64(_ at: Int, _ what: String) throws(HintError) -> UInt64 {
    do { return try r.u64(at: at - base) } catch { throw .malformed("\(what) at \(at) is out of bounds") }
  }
  func slice(_ at: Int, _ n: Int, _ what: String) throws(HintError) -> ArraySlice<UInt8> {
    do { return try r.slice(at: at - base, count: n) } catch {
      throw .malformed("\(what) at \(at) (\(n) bytes) is out of bounds")
    }
  }
}

extension HintFormat {
  struct Section {
    var kind: HintSectionKind
    var flags: UInt32
    var offset: Int
    var length: Int
    var items: UInt64
    var truncated: Bool { flags & sectionTruncated != 0 }
  }

  /// Validates a copy of a whole region and returns its hints. Any byte string yields a hint set
  /// or an error: every count is checked against the bytes that hold it before anything is
  /// allocated for it, so no allocation exceeds the region's size.
  public static func decode(_ bytes: [UInt8]) throws(HintError) -> HintSet {
    try decode(size: bytes.count) { offset, count throws(HintError) in
      guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
        throw .truncated(size: bytes.count, expected: UInt64(max(offset, 0)) &+ UInt64(max(count, 0)))
      }
      return Array(bytes[offset..<(offset + count)])
    }
  }

  /// The bytes read at once while checksumming.
  static let readChunk = 1 << 20

  /// The same validation over a region of `size` bytes read piece by piece: `read(offset,
  /// count)` returns those bytes (fewer only if the file shrank, an error). The region is never
  /// held whole beside what is decoded from it: the checksum is computed in chunks, then each
  /// section is read, decoded and dropped.
  ///
  /// `release(offset, count)`, when given, is told each range of a section once it has been read
  /// for the last time (after the checksum pass, every section's bytes are read exactly once, in
  /// forward order within the section, and sections never overlap), so that a caller decoding
  /// from its own copy of the region can give those pages back while the decoded form grows.
  public static func decode(
    size: Int, read: (_ offset: Int, _ count: Int) throws(HintError) -> [UInt8],
    release consumed: ((_ offset: Int, _ count: Int) -> Void)? = nil
  ) throws(HintError) -> HintSet {
    func fetch(_ offset: Int, _ count: Int) throws(HintError) -> [UInt8] {
      let got = try read(offset, count)
      guard got.count == count else { throw .truncated(size: offset + got.count, expected: UInt64(size)) }
      return got
    }
    guard size >= 8 else { throw .truncated(size: size, expected: UInt64(headerSize)) }
    let head = try fetch(0, min(size, headerSize))
    if head[0..<8].allSatisfy({ $0 == 0 }) { throw .empty }
    guard head[0..<8].elementsEqual(magic) else { throw .notAHintRegion }
    guard size >= headerSize else { throw .truncated(size: size, expected: UInt64(headerSize)) }
    var f = HintFields(head)
    let ver = try f.u16(versionOffset, "version")
    guard ver == version else { throw .unsupportedVersion(ver) }
    let hsize = try f.u16(headerSizeOffset, "header size")
    guard Int(hsize) == headerSize else { throw .malformed("header size \(hsize), expected \(headerSize)") }
    let regionSize = try f.u64(regionSizeOffset, "region size")
    guard regionSize >= UInt64(minRegionSize), regionSize <= UInt64(maxRegionSize) else {
      throw .oversized(what: "bytes of region", count: regionSize, limit: UInt64(maxRegionSize))
    }
    if UInt64(size) < regionSize { throw .truncated(size: size, expected: regionSize) }
    if UInt64(size) > regionSize { throw .trailingBytes(size: size, expected: regionSize) }
    let generation = try f.u64(generationOffset, "generation")
    guard generation % 2 == 0 else { throw .staleWriting(generation: generation) }
    let used = try f.u64(usedSizeOffset, "used size")
    guard used >= UInt64(headerSize), used <= regionSize, used % 8 == 0 else {
      throw .malformed("used size \(used) outside \(headerSize)...\(regionSize) or not 8-aligned")
    }
    let usedEnd = Int(used)
    let stored = try f.u64(checksumOffset, "checksum")
    // As `checksum(_:)`: the used bytes with the checksum field read as zero.
    var hasher = XXH64()
    hasher.update(head[0..<checksumOffset])
    hasher.update([UInt8](repeating: 0, count: 8))
    hasher.update(head[(checksumOffset + 8)..<headerSize])
    var hashed = headerSize
    while hashed < usedEnd {
      let n = min(readChunk, usedEnd - hashed)
      hasher.update(try fetch(hashed, n))
      hashed += n
    }
    let computed = hasher.finish()
    guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }

    // The checksum matched: what follows catches regions written wrong, or forged on purpose.
    let flags = try f.u32(flagsOffset, "flags")
    guard flags & ~flagPartial == 0 else { throw .malformed("unknown header flags \(flags)") }
    let published = Int64(bitPattern: try f.u64(publishedOffset, "publication time"))
    let sectionCount = try f.u32(sectionCountOffset, "section count")
    let pageSize = try f.u32(pageSizeOffset, "page size")
    guard pageSize >= 4096, pageSize <= 1 << 21, pageSize & (pageSize - 1) == 0 else {
      throw .malformed("page size \(pageSize) is not a power of two between 4 KiB and 2 MiB")
    }
    let releaseLength = Int(try f.u8(releaseLengthOffset, "release length"))
    let buildLength = Int(try f.u8(buildIDLengthOffset, "build id length"))
    guard releaseLength <= releaseCapacity, buildLength <= buildIDCapacity else {
      throw .malformed("kernel release length \(releaseLength) or build id length \(buildLength) too long")
    }
    guard head[(releaseLengthOffset + 2)..<releaseOffset].allSatisfy({ $0 == 0 }),
      head[(releaseOffset + releaseLength)..<(releaseOffset + releaseCapacity)].allSatisfy({ $0 == 0 }),
      head[(buildIDOffset + buildLength)..<(buildIDOffset + buildIDCapacity)].allSatisfy({ $0 == 0 }),
      head[reservedOffset..<headerSize].allSatisfy({ $0 == 0 })
    else { throw .malformed("reserved or padding bytes in the header are not zero") }
    guard let release = decodeUTF8(head[releaseOffset..<(releaseOffset + releaseLength)]),
      !release.unicodeScalars.contains(where: { $0.value < 0x20 })
    else { throw .malformed("kernel release is not printable UTF-8") }
    let buildID = Array(head[buildIDOffset..<(buildIDOffset + buildLength)])

    // Directory.
    guard sectionCount <= maxSections else {
      throw .oversized(what: "sections", count: UInt64(sectionCount), limit: UInt64(maxSections))
    }
    let directoryEnd = headerSize + Int(sectionCount) * directoryEntrySize
    guard directoryEnd <= usedEnd else { throw .malformed("section directory runs past the used size") }
    f = HintFields(head + (try fetch(headerSize, directoryEnd - headerSize)))
    var found: [HintSectionKind: Section] = [:]
    var anyTruncated = false
    for i in 0..<Int(sectionCount) {
      let at = headerSize + i * directoryEntrySize
      let kindRaw = try f.u32(at, "section kind")
      let sflags = try f.u32(at + 4, "section flags")
      let offset = try f.u64(at + 8, "section offset")
      let length = try f.u64(at + 16, "section length")
      let items = try f.u64(at + 24, "section items")
      guard sflags & ~(sectionRequired | sectionTruncated) == 0 else {
        throw .malformed("section \(kindRaw) has unknown flags \(sflags)")
      }
      guard let kind = HintSectionKind(rawValue: kindRaw) else {
        if sflags & sectionRequired != 0 {
          throw .malformed("unknown required section kind \(kindRaw) (written by a newer agent?)")
        }
        continue
      }
      guard offset % 8 == 0, offset >= UInt64(directoryEnd), offset <= used, length <= used - offset
      else {
        throw .malformed("\(kind.name) section at \(offset) length \(length) is outside the used bytes")
      }
      guard found[kind] == nil else { throw .malformed("\(kind.name) section appears twice") }
      found[kind] = Section(
        kind: kind, flags: sflags, offset: Int(offset), length: Int(length), items: items)
      anyTruncated = anyTruncated || sflags & sectionTruncated != 0
    }
    let placed = found.values.filter { $0.length > 0 }.sorted { $0.offset < $1.offset }
    for (a, b) in zip(placed, placed.dropFirst()) where a.offset + a.length > b.offset {
      throw .malformed("\(b.kind.name) section overlaps the \(a.kind.name) section")
    }
    let partial = flags & flagPartial != 0
    if anyTruncated && !partial {
      throw .inconsistent("a section is marked truncated but the region is not marked partial")
    }

    /// A section's bytes on their own (read, decoded, dropped), found at their region offsets.
    func load(_ s: Section) throws(HintError) -> HintFields {
      HintFields(try fetch(s.offset, s.length), base: s.offset)
    }
    func done(_ s: Section) { consumed?(s.offset, s.length) }
    guard let kernelSection = found[.kernel] else { throw .malformed("missing kernel section") }
    let kernel = try decodeKernel(try load(kernelSection), kernelSection)
    done(kernelSection)
    // The frame table is read a chunk at a time into what it decodes to (a table of runs is
    // 6 bytes per 4-byte run: the section beside it would make 2.5x). Each chunk is released
    // when the next is read: the decoder reads them in order and never goes back.
    let frames = try found[.frames].map { (s) throws(HintError) in
      var previous: (at: Int, n: Int)? = nil
      let table = try decodeFrames(s) { at, n throws(HintError) in
        if let p = previous { consumed?(p.at, p.n) }
        previous = (at, n)
        return HintFields(try fetch(at, n), base: at)
      }
      done(s)
      return table
    }
    // The files section, the largest, is read whole and kept as read: its records are checked
    // here and decoded one at a time when asked for (`CachedFiles`). It is read a chunk at a
    // time, each chunk released once appended, so a caller's copy shrinks as the array grows.
    let files = try found[.files].map { (s) throws(HintError) in
      var bytes: [UInt8] = []
      bytes.reserveCapacity(s.length)
      var at = s.offset
      while at < s.offset + s.length {
        let n = min(readChunk, s.offset + s.length - at)
        bytes.append(contentsOf: try fetch(at, n))
        consumed?(at, n)
        at += n
      }
      return try decodeFiles(s, pageSize: pageSize, totalFrames: frames?.totalFrames, bytes: bytes)
    } ?? .empty
    let metadata = try found[.metadata].map { (s) throws(HintError) -> [(key: String, value: String)] in
      defer { done(s) }
      return try decodeMetadata(try load(s), s)
    } ?? []

    let btf = try found[.btf].map { (s) throws(HintError) in
      defer { done(s) }
      return try decodeBTF(try load(s), s)
    }

    var set = HintSet(
      generation: generation, regionSize: regionSize, usedSize: used, published: published,
      partial: partial, pageSize: pageSize, kernelRelease: release, buildID: buildID,
      kernel: kernel, frames: frames, files: files, metadata: metadata)
    set.btf = btf
    return set
  }

  static func decodeKernel(_ f: HintFields, _ s: Section) throws(HintError) -> KernelSymbolHints {
    guard s.length == kernelSectionSize, s.items == 1 else {
      throw .malformed("kernel section has \(s.length) bytes and \(s.items) items, expected \(kernelSectionSize) and 1")
    }
    let at = s.offset
    let known = try f.u64(at, "kernel known mask")
    guard known & ~0xFF == 0 else { throw .malformed("kernel section: unknown fields \(hex64(known))") }
    var v: [UInt64] = []
    for i in 0..<9 { v.append(try f.u64(at + 8 + 8 * i, "kernel field")) }
    guard try f.slice(at + 80, kernelSectionSize - 80, "kernel reserved").allSatisfy({ $0 == 0 }) else {
      throw .malformed("kernel section: reserved bytes are not zero")
    }
    func has(_ bit: Int) -> Bool { known & (1 << UInt64(bit)) != 0 }
    // A field the agent did not learn must read zero (nothing hides in unused fields).
    for (bit, index) in [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (6, 7), (7, 8)]
    where !has(bit) && v[index] != 0 {
      throw .malformed("kernel section: field \(index) is set but not marked known")
    }
    var k = KernelSymbolHints()
    let upperHalf: UInt64 = 0xFF00_0000_0000_0000
    let pageMask: UInt64 = 0xFFF
    if has(0) {
      guard v[0] < 1 << 30, v[0] & pageMask == 0 else {
        throw .inconsistent("KASLR offset \(hex64(v[0])) is not a page-aligned slide below 1 GiB")
      }
      k.kaslrOffset = v[0]
    }
    if has(1) {
      guard v[1] >= startKernelMap else {
        throw .inconsistent("_text \(hex64(v[1])) is below the kernel map \(hex64(startKernelMap))")
      }
      k.text = KernelVirtualAddress(v[1])
    }
    if has(2) {
      // phys_base is an offset (physical load address minus the link-time one): with physical
      // and virtual KASLR independent it is often negative, i.e. wraps around as a u64.
      guard v[2] & pageMask == 0 else {
        throw .inconsistent("phys_base \(hex64(v[2])) is not page-aligned")
      }
      k.physBase = v[2]
    }
    for (bit, name) in [(3, "page_offset_base"), (4, "vmemmap_base"), (5, "vmalloc_base")] where has(bit) {
      let x = v[bit]
      guard x >= upperHalf, x & pageMask == 0 else {
        throw .inconsistent("\(name) \(hex64(x)) is not a page-aligned kernel-half address")
      }
    }
    if has(3) { k.pageOffsetBase = KernelVirtualAddress(v[3]) }
    if has(4) { k.vmemmapBase = KernelVirtualAddress(v[4]) }
    if has(5) { k.vmallocBase = KernelVirtualAddress(v[5]) }
    if has(6) {
      guard v[7] > 0, v[7] <= 1 << 16, v[6] < 1 << 52 else {
        throw .inconsistent("vmcoreinfo at \(hex64(v[6])) size \(v[7]) is out of range")
      }
      k.vmcoreinfo = (GuestPhysicalAddress(v[6]), v[7])
    }
    if has(7) {
      guard v[8] == 4 || v[8] == 5 else { throw .inconsistent("\(v[8]) page table levels (not 4 or 5)") }
      k.pagingLevels = UInt8(v[8])
      if v[8] == 4, let p = k.pageOffsetBase, p.rawValue < 0xFFFF_8000_0000_0000 {
        throw .inconsistent("page_offset_base \(p) is outside 4-level paging's kernel half")
      }
    }
    if has(0), has(1), v[1] &- v[0] < startKernelMap {
      throw .inconsistent("_text \(hex64(v[1])) minus the KASLR offset leaves the kernel map")
    }
    return k
  }

  /// The frame table; `read(at, n)` gives fields holding the `n` bytes at `at` (inside the
  /// section: checked before each call). Entries are read at most `readChunk` bytes at a time.
  static func decodeFrames(
    _ s: Section, read: (_ at: Int, _ n: Int) throws(HintError) -> HintFields
  ) throws(HintError) -> FrameClassTable {
    guard s.length >= framesHeaderSize else { throw .malformed("frames section is \(s.length) bytes") }
    let f = try read(s.offset, framesHeaderSize)
    let total = try f.u64(s.offset, "total frames")
    let count = try f.u64(s.offset + 8, "frame count")
    let encodingRaw = try f.u32(s.offset + 16, "frame table encoding")
    guard try f.u32(s.offset + 20, "reserved") == 0, try f.u64(s.offset + 24, "reserved") == 0 else {
      throw .malformed("frames section: reserved bytes are not zero")
    }
    guard total <= maxFrames else { throw .oversized(what: "frames", count: total, limit: maxFrames) }
    guard count <= total else { throw .inconsistent("frame table covers \(count) of \(total) frames") }
    guard (count < total) == s.truncated else {
      throw .inconsistent("frame table covers \(count) of \(total) frames but its truncated flag says otherwise")
    }
    guard let encoding = FrameTableEncoding(rawValue: encodingRaw) else {
      throw .malformed("unknown frame table encoding \(encodingRaw)")
    }
    let data = s.offset + framesHeaderSize
    let dataLength = s.length - framesHeaderSize
    var table = FrameClassTable(totalFrames: total)
    func check(_ e: UInt16, _ frame: UInt64) throws(HintError) {
      guard Color(rawValue: UInt8(e & 0x1F)) != nil else {
        throw .malformed("frame \(frame) has unknown color code \(e & 0x1F)")
      }
    }
    /// `count` items of `size` bytes from `data`, a chunk at a time: body(fields, first item, items).
    func chunks(
      _ size: Int, _ count: Int, _ body: (HintFields, Int, Int) throws(HintError) -> Void
    ) throws(HintError) {
      let per = readChunk / size
      var first = 0
      while first < count {
        let n = Swift.min(per, count - first)
        try body(try read(data + size * first, size * n), first, n)
        first += n
      }
    }
    switch encoding {
    case .raw:
      guard s.items == count, UInt64(dataLength) == (2 * count + 7) & ~7 else {
        throw .malformed("raw frame table: \(s.items) entries in \(dataLength) bytes for \(count) frames")
      }
      let n = Int(count)
      var entries: [UInt16] = []
      entries.reserveCapacity(n)
      try chunks(2, n) { (f, first, k) throws(HintError) in
        for i in first..<(first + k) {
          let e = try f.u16(data + 2 * i, "frame entry")
          try check(e, UInt64(i))
          entries.append(e)
        }
      }
      table = FrameClassTable(rawEntries: entries, totalFrames: total)
      guard bytes(try read(data + 2 * n, dataLength - 2 * n), data + 2 * n, dataLength - 2 * n) else {
        throw .malformed("frame table padding is not zero")
      }
    case .runs:
      guard s.items <= UInt64(dataLength / 4), UInt64(dataLength) == (4 * s.items + 7) & ~7 else {
        throw .malformed("frame runs: \(s.items) runs in \(dataLength) bytes")
      }
      let runs = Int(s.items)
      // Exactly as many runs as the section holds (at most): no array grows past them.
      table.reserveRuns(runs)
      var covered: UInt64 = 0
      try chunks(4, runs) { (f, first, k) throws(HintError) in
        for i in first..<(first + k) {
          let e = try f.u16(data + 4 * i, "run entry")
          let n = UInt64(try f.u16(data + 4 * i + 2, "run length")) + 1
          try check(e, covered)
          guard n <= count - covered else {
            throw .inconsistent("frame runs cover more than the \(count) frames of the table")
          }
          table.append(e, count: UInt32(n))
          covered += n
        }
      }
      guard covered == count else {
        throw .inconsistent("frame runs cover \(covered) frames, the table says \(count)")
      }
      guard bytes(try read(data + 4 * runs, dataLength - 4 * runs), data + 4 * runs, dataLength - 4 * runs) else {
        throw .malformed("frame table padding is not zero")
      }
    }
    return table
  }

  /// True when `n` bytes at `at` are all zero (padding).
  private static func bytes(_ f: HintFields, _ at: Int, _ n: Int) -> Bool {
    guard n >= 0, let s = try? f.slice(at, n, "padding") else { return false }
    return s.allSatisfy { $0 == 0 }
  }

  /// Checks the files section's records (`bytes`, the section as read) and returns them, to be
  /// decoded one file at a time (`CachedFiles`): where each record starts, and the records in
  /// (device, inode) order, each key listed once. No frame may hold two file pages.
  static func decodeFiles(
    _ s: Section, pageSize: UInt32, totalFrames: UInt64?, bytes: [UInt8]
  ) throws(HintError) -> CachedFiles {
    let minRecord = fileRecordHeaderSize + 8 + extentSize
    guard s.items <= UInt64(s.length / minRecord) else {
      throw .oversized(what: "files", count: s.items, limit: UInt64(s.length / minRecord))
    }
    guard bytes.count == s.length, s.length <= Int(UInt32.max) else {
      throw .malformed("files section of \(s.length) bytes read as \(bytes.count)")
    }
    // Fields at region offsets (errors name where in the region), over the section's bytes.
    let f = HintFields(bytes, base: s.offset)
    let end = s.offset + s.length
    var at = s.offset
    var starts: [UInt32] = []
    starts.reserveCapacity(Int(s.items))
    var anyCut = false
    let frameLimit = totalFrames ?? (1 << 52)
    // Framed extents, by their offset in `bytes`: sorted by frame below to find overlaps.
    var claims: [UInt32] = []
    for _ in 0..<Int(s.items) {
      guard end - at >= fileRecordHeaderSize else { throw .malformed("file record at \(at) runs past its section") }
      let size = try f.u64(at + 8, "file size")
      let resident = try f.u64(at + 16, "resident pages")
      let flags = try f.u16(at + 28, "file flags")
      let pathLength = Int(try f.u16(at + 30, "path length"))
      let extentCount = Int(try f.u32(at + 32, "extent count"))
      guard try f.u32(at + 36, "reserved") == 0, flags & ~3 == 0 else {
        throw .malformed("file record at \(at): unknown flags or reserved bytes")
      }
      guard pathLength > 0, pathLength <= maxPathLength else {
        throw .malformed("file record at \(at): path length \(pathLength)")
      }
      let pathAt = at + fileRecordHeaderSize
      let extentsAt = pathAt + align8(pathLength)
      guard extentCount >= 1, extentsAt <= end, extentCount <= (end - extentsAt) / extentSize else {
        throw .malformed("file record at \(at): \(extentCount) extents run past the section")
      }
      // Checked byte by byte without making a String (the path is decoded when asked for).
      guard isAbsoluteUTF8Path(try f.slice(pathAt, pathLength, "path")) else {
        throw .malformed("file record at \(at): path is not an absolute UTF-8 path")
      }
      guard Self.bytes(f, pathAt + pathLength, extentsAt - pathAt - pathLength) else {
        throw .malformed("file record at \(at): path padding is not zero")
      }
      // Named in messages below: decoded only for an error.
      func path() -> String { decodeUTF8((try? f.slice(pathAt, pathLength, "path")) ?? []) ?? "?" }
      let framesKnown = flags & 1 != 0
      let cut = flags & 2 != 0
      let filePages = size / UInt64(pageSize) + (size % UInt64(pageSize) == 0 ? 0 : 1)
      var nextPage: UInt64 = 0
      var covered: UInt64 = 0
      for i in 0..<extentCount {
        let e = extentsAt + i * extentSize
        let page = try f.u64(e, "extent page")
        let pages = try f.u32(e + 8, "extent pages")
        guard try f.u32(e + 12, "reserved") == 0 else { throw .malformed("extent at \(e): reserved bytes") }
        let frame = try f.u64(e + 16, "extent frame")
        guard pages > 0, page >= nextPage, page <= filePages, UInt64(pages) <= filePages - page else {
          throw .inconsistent("\(path()): extent \(i) (page \(page), \(pages) pages) is out of order or past the file's \(filePages) pages")
        }
        nextPage = page + UInt64(pages)
        covered += UInt64(pages)
        if frame != noFrame {
          guard framesKnown, frame < frameLimit, UInt64(pages) <= frameLimit - frame else {
            throw .inconsistent("\(path()): extent \(i) claims frames \(frame)+\(pages) outside the guest")
          }
          claims.append(UInt32(e - s.offset))
        }
      }
      guard cut ? covered < resident : covered == resident else {
        throw .inconsistent("\(path()): extents cover \(covered) pages, the record says \(resident) resident")
      }
      anyCut = anyCut || cut
      starts.append(UInt32(at - s.offset))
      at = extentsAt + extentCount * extentSize
    }
    guard at == end else { throw .malformed("files section has \(end - at) bytes after its last record") }
    if anyCut && !s.truncated { throw .inconsistent("a file's extents are cut but the files section is not marked truncated") }
    // Unchecked loads from here on: every offset below is a record or extent checked above.
    let overlap: UInt64? = bytes.withUnsafeBytes { raw in
      func u64(_ o: UInt32) -> UInt64 { raw.loadUnaligned(fromByteOffset: Int(o), as: UInt64.self).littleEndian }
      func u32(_ o: UInt32) -> UInt32 { raw.loadUnaligned(fromByteOffset: Int(o), as: UInt32.self).littleEndian }
      claims.sort { u64($0 + 16) < u64($1 + 16) }
      for (a, b) in zip(claims, claims.dropFirst()) where u64(b + 16) < u64(a + 16) + UInt64(u32(a + 8)) {
        return u64(b + 16)
      }
      return nil
    }
    if let overlap { throw .inconsistent("frame \(overlap) holds two file pages") }
    claims = []
    var byKey = [UInt32](0..<UInt32(starts.count))
    let twice: (UInt32, UInt64)? = bytes.withUnsafeBytes { raw in
      func key(_ i: UInt32) -> (UInt32, UInt64) {
        let o = Int(starts[Int(i)])
        return (
          raw.loadUnaligned(fromByteOffset: o + 24, as: UInt32.self).littleEndian,
          raw.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian
        )
      }
      byKey.sort { key($0) < key($1) }
      for (a, b) in zip(byKey, byKey.dropFirst()) where key(a) == key(b) { return key(a) }
      return nil
    }
    if let twice { throw .inconsistent("file \(twice.1) on device \(twice.0) is listed twice") }
    return CachedFiles(bytes: bytes, starts: starts, byKey: byKey)
  }

  /// An absolute path in valid UTF-8 without NUL (what `decodeUTF8` accepts, without a String).
  static func isAbsoluteUTF8Path(_ b: ArraySlice<UInt8>) -> Bool {
    guard b.first == 0x2F, !b.contains(0) else { return false }
    var it = b.makeIterator()
    var decoder = UTF8()
    while true {
      switch decoder.decode(&it) {
      case .scalarValue: continue
      case .emptyInput: return true
      case .error: return false
      }
    }
  }

  /// The BTF section: its structure only. The host decompresses the blob with the size given
  /// here as the bound and checks the checksum then (KscopeKernelImage.PublishedBTFBlob).
  static func decodeBTF(_ f: HintFields, _ s: Section) throws(HintError) -> PublishedBTF {
    guard s.length >= btfHeaderSize + 8, s.items == 1, !s.truncated else {
      throw .malformed("btf section has \(s.length) bytes and \(s.items) items (or is marked truncated)")
    }
    let codeRaw = try f.u32(s.offset, "btf compression")
    guard let compression = BTFCompression(rawValue: codeRaw) else {
      throw .malformed("btf section: unknown compression \(codeRaw)")
    }
    guard try f.u32(s.offset + 4, "btf reserved") == 0 else { throw .malformed("btf section: reserved bytes are not zero") }
    let size = try f.u64(s.offset + 8, "btf size")
    let stored = try f.u64(s.offset + 16, "btf compressed size")
    let checksum = try f.u64(s.offset + 24, "btf checksum")
    guard size >= 24, size <= maxBTFBytes else {
      throw .oversized(what: "bytes of BTF", count: size, limit: maxBTFBytes)
    }
    let room = UInt64(s.length - btfHeaderSize)
    guard stored > 0, stored <= room, room - stored < 8 else {
      throw .malformed("btf section: \(stored) compressed bytes in a \(s.length)-byte section")
    }
    let n = Int(stored)
    guard bytes(f, s.offset + btfHeaderSize + n, Int(room) - n) else {
      throw .malformed("btf section padding is not zero")
    }
    let data = Array(try f.slice(s.offset + btfHeaderSize, n, "btf data"))
    return PublishedBTF(compression: compression, size: size, checksum: checksum, data: data)
  }

  static func decodeMetadata(_ f: HintFields, _ s: Section) throws(HintError) -> [(key: String, value: String)] {
    guard s.items <= UInt64(maxMetadataEntries) else {
      throw .oversized(what: "metadata entries", count: s.items, limit: UInt64(maxMetadataEntries))
    }
    var out: [(key: String, value: String)] = []
    var keys = Set<String>()
    var at = s.offset
    let end = s.offset + s.length
    for _ in 0..<Int(s.items) {
      guard end - at >= 4 else { throw .malformed("metadata entry at \(at) runs past its section") }
      let kl = Int(try f.u16(at, "metadata key length"))
      let vl = Int(try f.u16(at + 2, "metadata value length"))
      guard kl > 0, kl <= maxMetadataString, vl <= maxMetadataString, kl + vl <= end - at - 4 else {
        throw .malformed("metadata entry at \(at) has bad lengths \(kl)/\(vl)")
      }
      guard let k = decodeUTF8(try f.slice(at + 4, kl, "metadata key")),
        let v = decodeUTF8(try f.slice(at + 4 + kl, vl, "metadata value"))
      else { throw .malformed("metadata entry at \(at) is not UTF-8") }
      guard keys.insert(k).inserted else { throw .malformed("metadata key \(k) appears twice") }
      out.append((k, v))
      at += 4 + kl + vl
    }
    guard end - at < 8, bytes(f, at, end - at) else {
      throw .malformed("metadata section has bytes after its last entry")
    }
    return out
  }
}

/// Reading a region that the guest may be rewriting: the seqlock protocol on the host side.
public enum HintReader {
  /// Reads the generation, copies the region, reads the generation again, and decodes the copy.
  /// An odd generation (the agent is writing) or one that moved is `stale`; so is a copy whose
  /// own generation differs from the one read before (a torn copy).
  public static func readConsistent(
    generation: () throws(HintError) -> UInt64, copy: () throws(HintError) -> [UInt8]
  ) throws(HintError) -> HintSet {
    var bytes: [UInt8] = []
    return try readConsistent(
      generation: generation,
      copy: { () throws(HintError) -> Int in
        bytes = try copy()
        return bytes.count
      },
      read: { (offset, count) throws(HintError) -> [UInt8] in
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
          throw .truncated(size: bytes.count, expected: UInt64(max(offset, 0)) &+ UInt64(max(count, 0)))
        }
        return Array(bytes[offset..<(offset + count)])
      }, release: nil)
  }

  /// The same protocol over a copy that the caller keeps: `copy()` takes it inside the seqlock
  /// window and returns its size, `read` serves bytes from it, and `release` is told each range
  /// the decoder is done with (see `HintFormat.decode(size:read:release:)`), so that the copy
  /// can shrink while the hints are decoded from it: copy and decoded form are never both whole.
  public static func readConsistent(
    generation: () throws(HintError) -> UInt64, copy: () throws(HintError) -> Int,
    read: (_ offset: Int, _ count: Int) throws(HintError) -> [UInt8],
    release: ((_ offset: Int, _ count: Int) -> Void)?
  ) throws(HintError) -> HintSet {
    let before = try generation()
    guard before % 2 == 0 else { throw .staleWriting(generation: before) }
    let size = try copy()
    let after = try generation()
    guard before == after else { throw .staleChanged(before: before, after: after) }
    let set = try HintFormat.decode(size: size, read: read, release: release)
    guard set.generation == before else { throw .staleChanged(before: before, after: set.generation) }
    return set
  }

  /// The same protocol without a copy of the region: the generation, then the region decoded
  /// from `read` piece by piece (HintFormat's `decode(size:read:)`), then the generation again.
  /// A decode that failed while the generation moved is `stale` too (it read a torn region).
  public static func readConsistent(
    generation: () throws(HintError) -> UInt64, size: Int,
    read: (_ offset: Int, _ count: Int) throws(HintError) -> [UInt8]
  ) throws(HintError) -> HintSet {
    let before = try generation()
    guard before % 2 == 0 else { throw .staleWriting(generation: before) }
    let decoded: Result<HintSet, HintError>
    do throws(HintError) { decoded = .success(try HintFormat.decode(size: size, read: read)) } catch {
      decoded = .failure(error)
    }
    let after = try generation()
    guard before == after else { throw .staleChanged(before: before, after: after) }
    let set = try decoded.get()
    guard set.generation == before else { throw .staleChanged(before: before, after: set.generation) }
    return set
  }

  /// The generation field of a region's first bytes (at least 24), or nil when too short.
  public static func generation(inPrefix bytes: [UInt8]) -> UInt64? {
    try? ByteReader(bytes).u64(at: HintFormat.generationOffset)
  }
}
