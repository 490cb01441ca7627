// MARK: - Reading

extension ColorMapFormat {
  /// Where a section lies in a file.
  struct Section {
    var kind: SectionKind
    var offset: Int
    var length: Int
    var items: UInt64
  }

  /// Parses and validates a whole file held in memory: header, checksum, every section, and
  /// the consistency of frames, totals, run index and attributes. Any failure is a
  /// `ColorMapError`; no input crashes the reader or makes it allocate more than the file's
  /// size suggests.
  public static func decode(_ bytes: [UInt8]) throws(ColorMapError) -> ColorMap {
    try decode(size: bytes.count) { offset, count throws(ColorMapError) in
      guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
        throw .truncated(size: bytes.count, expected: UInt64(max(offset, 0)) &+ UInt64(max(count, 0)))
      }
      return Array(bytes[offset..<(offset + count)])
    }
  }

  /// The bytes read at once while checksumming and loading frames: the file itself is never
  /// held whole, so a reader's memory is the decoded map (about the file's size) plus this.
  static let readChunk = 1 << 20

  /// The same validation over a file of `size` bytes that is read piece by piece:
  /// `read(offset, count)` returns those bytes (fewer only if the file shrank, which is an
  /// error). The checksum is computed over the whole file first, in chunks; then each section
  /// is read, decoded and dropped, and the frames are loaded straight into the entry array.
  public static func decode(
    size: Int, read: (_ offset: Int, _ count: Int) throws(ColorMapError) -> [UInt8]
  ) throws(ColorMapError) -> ColorMap {
    guard size >= headerSize + trailerSize else { throw .tooShort(size: size) }
    func fetch(_ offset: Int, _ count: Int) throws(ColorMapError) -> [UInt8] {
      let got = try read(offset, count)
      guard got.count == count else {
        throw .truncated(size: offset + got.count, expected: UInt64(size))
      }
      return got
    }
    let head = try fetch(0, headerSize)
    guard Array(head[0..<8]) == magic else { throw .notAColorMap }
    var r = ByteReader(head)
    func rd<T>(_ f: () throws(ByteReader.OutOfBounds) -> T) throws(ColorMapError) -> T {
      do { return try f() } catch { throw .badHeader("field at \(error.offset) out of bounds") }
    }
    let ver = try rd { () throws(ByteReader.OutOfBounds) in try r.u16(at: 8) }
    guard ver == version else { throw .unsupportedVersion(ver) }
    let hsize = try rd { () throws(ByteReader.OutOfBounds) in try r.u16(at: 10) }
    guard Int(hsize) == headerSize else {
      throw .badHeader("header size \(hsize), expected \(headerSize)")
    }
    let fileSize = try rd { () throws(ByteReader.OutOfBounds) in try r.u64(at: 40) }
    if UInt64(size) < fileSize { throw .truncated(size: size, expected: fileSize) }
    if UInt64(size) > fileSize { throw .trailingBytes(size: size, expected: fileSize) }
    let trailer = try fetch(size - trailerSize, trailerSize)
    guard Array(trailer[0..<8]) == trailerMagic else {
      throw .badHeader("trailer marker missing")
    }
    let stored = try rd { () throws(ByteReader.OutOfBounds) in try ByteReader(trailer).u64(at: 8) }
    var hasher = XXH64()
    var hashed = 0
    while hashed < size - 8 {
      let n = min(readChunk, size - 8 - hashed)
      hasher.update(try fetch(hashed, n))
      hashed += n
    }
    let computed = hasher.finish()
    guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }

    // The checksum matched: what follows catches files that were written wrong (or forged).
    let sectionCount = try rd { () throws(ByteReader.OutOfBounds) in try r.u32(at: 12) }
    let pageSize = try rd { () throws(ByteReader.OutOfBounds) in try r.u32(at: 16) }
    let sourcesRaw = try rd { () throws(ByteReader.OutOfBounds) in try r.u32(at: 20) }
    let frameCount = try rd { () throws(ByteReader.OutOfBounds) in try r.u64(at: 24) }
    let created = try rd { () throws(ByteReader.OutOfBounds) in try r.u64(at: 32) }
    let algo = try rd { () throws(ByteReader.OutOfBounds) in try r.u32(at: 48) }
    let imageSize = try rd { () throws(ByteReader.OutOfBounds) in try r.u64(at: 56) }
    guard pageSize >= 4096, pageSize <= 1 << 30, pageSize & (pageSize - 1) == 0 else {
      throw .badHeader("page size \(pageSize) is not a power of two between 4 KiB and 1 GiB")
    }
    guard frameCount <= maxFrames else {
      throw .oversized(what: "frames", count: frameCount, limit: maxFrames)
    }
    guard let algorithm = ImageDigest.Algorithm(rawValue: algo) else {
      throw .badHeader("unknown image digest algorithm \(algo)")
    }
    guard head[52..<56].allSatisfy({ $0 == 0 }), head[96..<128].allSatisfy({ $0 == 0 }) else {
      throw .badHeader("reserved bytes are not zero")
    }
    let digestLength = algorithm.byteCount
    guard head[(64 + digestLength)..<96].allSatisfy({ $0 == 0 }) else {
      throw .badHeader("image digest has bytes past its length")
    }
    let image = ImageDigest(
      algorithm: algorithm, bytes: Array(head[64..<(64 + digestLength)]), size: imageSize)

    // Section directory.
    guard sectionCount <= maxSections else {
      throw .oversized(what: "sections", count: UInt64(sectionCount), limit: UInt64(maxSections))
    }
    let directoryEnd = headerSize + Int(sectionCount) * sectionEntrySize
    let dataEnd = size - trailerSize
    guard directoryEnd <= dataEnd else { throw .badHeader("section directory runs past the end") }
    // Header and directory, at their offsets in the file.
    r = ByteReader(head + (try fetch(headerSize, directoryEnd - headerSize)))
    var found: [SectionKind: Section] = [:]
    for i in 0..<Int(sectionCount) {
      let at = headerSize + i * sectionEntrySize
      let kindRaw = try rd { () throws(ByteReader.OutOfBounds) in try r.u32(at: at) }
      let flags = try rd { () throws(ByteReader.OutOfBounds) in try r.u32(at: at + 4) }
      let offset = try rd { () throws(ByteReader.OutOfBounds) in try r.u64(at: at + 8) }
      let length = try rd { () throws(ByteReader.OutOfBounds) in try r.u64(at: at + 16) }
      let items = try rd { () throws(ByteReader.OutOfBounds) in try r.u64(at: at + 24) }
      guard let kind = SectionKind(rawValue: kindRaw) else {
        if flags & sectionRequired != 0 { throw .unknownRequiredSection(kind: kindRaw) }
        continue
      }
      guard offset % 8 == 0, offset >= UInt64(directoryEnd), offset <= UInt64(dataEnd),
        length <= UInt64(dataEnd) - offset
      else {
        throw .badSection(kind.name, reason: "offset \(offset) length \(length) outside the file")
      }
      guard found[kind] == nil else { throw .badSection(kind.name, reason: "appears twice") }
      found[kind] = Section(kind: kind, offset: Int(offset), length: Int(length), items: items)
    }
    // Sections must not overlap (a forged directory could alias two of them).
    let placed = found.values.filter { $0.length > 0 }.sorted { $0.offset < $1.offset }
    for (a, b) in zip(placed, placed.dropFirst()) where a.offset + a.length > b.offset {
      throw .badSection(b.kind.name, reason: "overlaps the \(a.kind.name) section")
    }

    func need(_ k: SectionKind) throws(ColorMapError) -> Section {
      guard let s = found[k] else { throw .missingSection(k.name) }
      return s
    }
    /// A section's bytes on their own, with the section at offset 0 of the reader.
    func load(_ s: Section) throws(ColorMapError) -> (ByteReader, Section) {
      (ByteReader(try fetch(s.offset, s.length)), Section(kind: s.kind, offset: 0, length: s.length, items: s.items))
    }

    // Metadata.
    let (metaReader, metaSection) = try load(try need(.metadata))
    var header = ColorMapHeader(
      pageSize: pageSize, sources: ColorSources(rawValue: sourcesRaw),
      created: Int64(bitPattern: created), image: image)
    try decodeMetadata(metaReader, metaSection, into: &header)

    // Frames, loaded a chunk at a time into the one entry array.
    let framesSection = try need(.frames)
    guard framesSection.items == frameCount, UInt64(framesSection.length) == frameCount * 2 else {
      throw .badSection(
        "frames",
        reason: "\(framesSection.items) entries in \(framesSection.length) bytes for \(frameCount) frames")
    }
    // Each chunk is decoded straight into the entry array and counted as it goes (no
    // intermediate array per chunk: the copies and fresh pages were a third of the open time).
    var totals = [UInt64](repeating: 0, count: Color.codeSpace)
    var failure: ColorMapError?
    let count = Int(frameCount)
    let entries = [UInt16](unsafeUninitializedCapacity: count) { out, initialized in
      var done = 0
      while done < count {
        let n = min(readChunk / 2, count - done)
        var chunk: [UInt8] = []
        do throws(ColorMapError) { chunk = try fetch(framesSection.offset + 2 * done, 2 * n) } catch {
          failure = error
          break
        }
        chunk.withUnsafeBytes { raw in
          for i in 0..<n {
            let e = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            out[done + i] = e
            totals[Int(e & 0x1F)] &+= 1
          }
        }
        done += n
      }
      initialized = done
    }
    if let failure { throw failure }
    for code in 0..<Color.codeSpace where totals[code] > 0 && Color(rawValue: UInt8(code)) == nil {
      let frame = entries.firstIndex { Int($0 & 0x1F) == code } ?? 0
      throw .badFrame(frame: UInt64(frame), code: UInt8(code))
    }

    // Color totals.
    let (totalsReader, totalsSection) = try load(try need(.colorTotals))
    guard totalsSection.items == UInt64(Color.codeSpace), totalsSection.length == Color.codeSpace * 8
    else { throw .badSection("color totals", reason: "expected \(Color.codeSpace) counters") }
    for code in 0..<Color.codeSpace {
      let s = try rd { () throws(ByteReader.OutOfBounds) in
        try totalsReader.u64(at: totalsSection.offset + code * 8)
      }
      guard s == totals[code] else {
        let name = Color(rawValue: UInt8(code))?.name ?? "code \(code)"
        throw .badTotals(color: name, stored: s, counted: totals[code])
      }
    }

    let (runsReader, runsSection) = try load(try need(.runs))
    let runs = try decodeRuns(runsReader, runsSection, entries: entries)
    let (colorRunsReader, colorRunsSection) = try load(try need(.colorRuns))
    let colorRuns = try decodeColorRuns(colorRunsReader, colorRunsSection, runs: runs)
    var paths: [String] = []
    if let s = found[.paths] {
      let (pathsReader, pathsSection) = try load(s)
      paths = try decodePaths(pathsReader, pathsSection)
    }
    var extents: [AttributeExtent] = []
    if let s = found[.extents] {
      let (extentsReader, extentsSection) = try load(s)
      extents = try decodeExtents(extentsReader, extentsSection, frameCount: frameCount, paths: paths)
    }

    return ColorMap(
      header: header, entries: entries, runs: runs, colorRuns: colorRuns, extents: extents,
      totals: totals)
  }

  static func decodeMetadata(
    _ r: ByteReader, _ s: Section, into header: inout ColorMapHeader
  ) throws(ColorMapError) {
    guard s.items <= maxMetadataEntries else {
      throw .oversized(what: "metadata entries", count: s.items, limit: maxMetadataEntries)
    }
    var at = s.offset
    let end = s.offset + s.length
    var seen = Set<String>()
    for _ in 0..<Int(s.items) {
      do {
        guard at + 4 <= end else { throw ColorMapError.badMetadata("entry runs past its section") }
        let kl = Int(try r.u16(at: at))
        let vl = Int(try r.u16(at: at + 2))
        guard at + 4 + kl + vl <= end else {
          throw ColorMapError.badMetadata("entry runs past its section")
        }
        guard let key = decodeUTF8(try r.slice(at: at + 4, count: kl)),
          let value = decodeUTF8(try r.slice(at: at + 4 + kl, count: vl))
        else { throw ColorMapError.badMetadata("entry is not UTF-8") }
        guard !key.isEmpty, seen.insert(key).inserted else {
          throw ColorMapError.badMetadata("empty or repeated key '\(key)'")
        }
        switch key {
        case "kernel.release": header.kernelRelease = value
        case "kernel.build_id": header.kernelBuildID = value
        default: header.metadata.append((key: key, value: value))
        }
        at += 4 + kl + vl
      } catch let e as ColorMapError {
        throw e
      } catch {
        throw .badMetadata("entry runs past its section")
      }
    }
    guard at == end else { throw .badMetadata("\(end - at) bytes after the last entry") }
  }

  static func decodeRuns(
    _ r: ByteReader, _ s: Section, entries: [UInt16]
  ) throws(ColorMapError) -> [ColorRun] {
    let frameCount = UInt64(entries.count)
    guard s.items <= max(frameCount, 1) else {
      throw .oversized(what: "runs", count: s.items, limit: frameCount)
    }
    guard UInt64(s.length) == s.items * UInt64(runRecordSize) else {
      throw .badRunIndex("\(s.items) runs in \(s.length) bytes")
    }
    var runs: [ColorRun] = []
    runs.reserveCapacity(Int(s.items))
    var expected: UInt64 = 0
    for k in 0..<Int(s.items) {
      let at = s.offset + k * runRecordSize
      guard let start = try? r.u64(at: at), let count = try? r.u32(at: at + 8),
        let code = try? r.u8(at: at + 12), let pad = try? r.u32(at: at + 12)
      else { throw .badRunIndex("run \(k) out of bounds") }
      guard pad >> 8 == 0 else { throw .badRunIndex("run \(k) has non-zero padding") }
      guard start == expected else {
        throw .badRunIndex("run \(k) starts at frame \(start), expected \(expected)")
      }
      guard count > 0, UInt64(count) <= frameCount - start else {
        throw .badRunIndex("run \(k) at frame \(start) has bad length \(count)")
      }
      guard let color = Color(rawValue: code) else {
        throw .badRunIndex("run \(k) has unknown color code \(code)")
      }
      if let prev = runs.last, prev.color == color, prev.count < UInt64(UInt32.max) {
        throw .badRunIndex("runs \(k - 1) and \(k) have the same color and should be one")
      }
      let end = Int(start) + Int(count)
      for i in Int(start)..<end where entries[i] & 0x1F != UInt16(code) {
        throw .badRunIndex("run \(k) says \(color.name) but frame \(i) is not")
      }
      runs.append(ColorRun(start: start, count: UInt64(count), color: color))
      expected = UInt64(end)
    }
    guard expected == frameCount else {
      throw .badRunIndex("runs cover \(expected) of \(frameCount) frames")
    }
    return runs
  }

  static func decodeColorRuns(
    _ r: ByteReader, _ s: Section, runs: [ColorRun]
  ) throws(ColorMapError) -> [[UInt32]] {
    let n = runs.count
    guard s.items == UInt64(n), s.length == (Color.codeSpace + 1) * 4 + n * 4 else {
      throw .badRunIndex("per-color index has \(s.items) entries in \(s.length) bytes for \(n) runs")
    }
    var perColor = [Int](repeating: 0, count: Color.codeSpace)
    for run in runs { perColor[Int(run.color.rawValue)] += 1 }
    var lists: [[UInt32]] = []
    var base = s.offset + (Color.codeSpace + 1) * 4
    for code in 0..<Color.codeSpace {
      guard let lo = try? r.u32(at: s.offset + code * 4),
        let hi = try? r.u32(at: s.offset + code * 4 + 4)
      else { throw .badRunIndex("per-color offsets out of bounds") }
      guard lo <= hi, Int(hi) <= n, Int(hi - lo) == perColor[code],
        base == s.offset + (Color.codeSpace + 1) * 4 + Int(lo) * 4
      else { throw .badRunIndex("per-color offsets for color code \(code) are inconsistent") }
      var list: [UInt32] = []
      list.reserveCapacity(Int(hi - lo))
      for j in 0..<Int(hi - lo) {
        guard let k = try? r.u32(at: base + j * 4) else {
          throw .badRunIndex("per-color index out of bounds")
        }
        guard Int(k) < n, runs[Int(k)].color.rawValue == UInt8(code),
          list.last.map({ $0 < k }) ?? true
        else { throw .badRunIndex("per-color index for color code \(code) names run \(k) wrongly") }
        list.append(k)
      }
      base += Int(hi - lo) * 4
      lists.append(list)
    }
    return lists
  }

  static func decodePaths(_ r: ByteReader, _ s: Section) throws(ColorMapError) -> [String] {
    guard s.items <= maxPaths, s.items <= UInt64(s.length / 4) else {
      throw .oversized(what: "paths", count: s.items, limit: min(maxPaths, UInt64(s.length / 4)))
    }
    var paths: [String] = []
    var at = s.offset
    let end = s.offset + s.length
    for k in 0..<Int(s.items) {
      guard at + 4 <= end, let len = try? r.u32(at: at), Int(len) <= maxPathBytes,
        at + 4 + Int(len) <= end, let bytes = try? r.slice(at: at + 4, count: Int(len))
      else { throw .badSection("paths", reason: "path \(k) runs past its section or is too long") }
      guard let p = decodeUTF8(bytes) else {
        throw .badSection("paths", reason: "path \(k) is not UTF-8")
      }
      paths.append(p)
      at += 4 + Int(len)
    }
    guard at == end else { throw .badSection("paths", reason: "\(end - at) bytes after the last path") }
    return paths
  }

  static func decodeExtents(
    _ r: ByteReader, _ s: Section, frameCount: UInt64, paths: [String]
  ) throws(ColorMapError) -> [AttributeExtent] {
    guard s.items <= frameCount || s.items == 0 else {
      throw .oversized(what: "attribute extents", count: s.items, limit: frameCount)
    }
    guard UInt64(s.length) == s.items * UInt64(extentRecordSize) else {
      throw .badAttributes("\(s.items) extents in \(s.length) bytes")
    }
    var out: [AttributeExtent] = []
    out.reserveCapacity(Int(s.items))
    var previousEnd: UInt64 = 0
    for k in 0..<Int(s.items) {
      let at = s.offset + k * extentRecordSize
      guard let start = try? r.u64(at: at), let count = try? r.u64(at: at + 8),
        let inode = try? r.u64(at: at + 16), let index = try? r.u64(at: at + 24),
        let device = try? r.u32(at: at + 32), let pathRef = try? r.u32(at: at + 36),
        let owner = try? r.u32(at: at + 40), let flags = try? r.u32(at: at + 44)
      else { throw .badAttributes("extent \(k) out of bounds") }
      guard count > 0, start <= frameCount, count <= frameCount - start else {
        throw .badAttributes("extent \(k) (frame \(start), \(count) frames) is outside the map")
      }
      guard start >= previousEnd else {
        throw .badAttributes("extent \(k) at frame \(start) overlaps or is out of order")
      }
      guard flags & ~1 == 0 else { throw .badAttributes("extent \(k) has unknown flags") }
      let hasFile = flags & 1 != 0
      guard hasFile || (inode == 0 && index == 0 && device == 0) else {
        throw .badAttributes("extent \(k) has file fields without its file flag")
      }
      guard !hasFile || index <= UInt64.max - count else {
        throw .badAttributes("extent \(k) file index overflows")
      }
      guard pathRef == noneRef || Int(pathRef) < paths.count else {
        throw .badAttributes("extent \(k) names path \(pathRef) of \(paths.count)")
      }
      out.append(
        AttributeExtent(
          start: start, count: count,
          file: hasFile ? FileIdentity(device: device, inode: inode, index: index) : nil,
          path: pathRef == noneRef ? nil : paths[Int(pathRef)],
          owner: owner == noneRef ? nil : owner))
      previousEnd = start + count
    }
    return out
  }
}
