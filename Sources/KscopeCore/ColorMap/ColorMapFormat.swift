/// The color map file format, version 1 (see host/docs/color-map-format.md).
///
/// Little-endian throughout. A 128-byte header, a section directory (32 bytes per section),
/// 8-aligned sections, and a 16-byte trailer: "KCMSUM\0\0" and the XXH64 of every byte before
/// the checksum. The frame array is 2 bytes per frame at an 8-aligned offset, so it can be
/// memory-mapped and indexed directly.
public enum ColorMapFormat {
  public static let magic: [UInt8] = [0x89, 0x4B, 0x43, 0x4D, 0x0D, 0x0A, 0x1A, 0x0A]  // \x89KCM\r\n\x1a\n
  public static let trailerMagic: [UInt8] = Array("KCMSUM".utf8) + [0, 0]
  public static let version: UInt16 = 1
  public static let headerSize = 128
  public static let sectionEntrySize = 32
  public static let trailerSize = 16
  public static let runRecordSize = 16
  public static let extentRecordSize = 48

  /// Limits that bound every allocation the reader makes from counts in a file.
  public static let maxFrames: UInt64 = 1 << 32  // 16 TiB of 4 KiB pages
  public static let maxSections: UInt32 = 64
  public static let maxMetadataEntries: UInt64 = 4096
  public static let maxPaths: UInt64 = 1 << 24
  public static let maxPathBytes = 4096

  /// Section kinds. A reader that meets an unknown kind skips it, unless its `required` flag
  /// is set. To add a section: take the next kind, document it, and keep old readers working.
  public enum SectionKind: UInt32, CaseIterable, Sendable {
    case metadata = 1
    case frames = 2
    case colorTotals = 3
    case runs = 4
    case colorRuns = 5
    case extents = 6
    case paths = 7

    public var name: String {
      switch self {
      case .metadata: "metadata"
      case .frames: "frames"
      case .colorTotals: "color totals"
      case .runs: "runs"
      case .colorRuns: "color runs"
      case .extents: "extents"
      case .paths: "paths"
      }
    }
  }
  static let sectionRequired: UInt32 = 1

  static let noneRef: UInt32 = 0xFFFF_FFFF
}

// MARK: - Writing

extension ColorMapFormat {
  /// Serialises a map. Deterministic: the same map gives the same bytes.
  public static func encode(_ map: ColorMap) -> [UInt8] {
    // Paths are stored once each and referenced by index.
    var paths: [String] = []
    var pathIndex: [String: UInt32] = [:]
    for e in map.extents {
      if let p = e.path, pathIndex[p] == nil {
        pathIndex[p] = UInt32(paths.count)
        paths.append(p)
      }
    }

    var sections: [(SectionKind, UInt64, [UInt8])] = []

    var meta = ByteWriter()
    var pairs: [(String, String)] = []
    if let r = map.header.kernelRelease { pairs.append(("kernel.release", r)) }
    if let b = map.header.kernelBuildID { pairs.append(("kernel.build_id", b)) }
    pairs += map.header.metadata.map { ($0.key, $0.value) }
    for (k, v) in pairs {
      let kb = Array(k.utf8.prefix(Int(UInt16.max)))
      let vb = Array(v.utf8.prefix(Int(UInt16.max)))
      meta.u16(UInt16(kb.count))
      meta.u16(UInt16(vb.count))
      meta.raw(kb)
      meta.raw(vb)
    }
    sections.append((.metadata, UInt64(pairs.count), meta.bytes))

    var frames = ByteWriter(capacity: map.entries.count * 2)
    for e in map.entries { frames.u16(e) }
    sections.append((.frames, map.frameCount, frames.bytes))

    var totals = ByteWriter()
    for t in map.totals { totals.u64(t) }
    sections.append((.colorTotals, UInt64(Color.codeSpace), totals.bytes))

    var runs = ByteWriter(capacity: map.runs.count * runRecordSize)
    for r in map.runs {
      runs.u64(r.start)
      runs.u32(UInt32(r.count))
      runs.u8(r.color.rawValue)
      runs.zeros(3)
    }
    sections.append((.runs, UInt64(map.runs.count), runs.bytes))

    var colorRuns = ByteWriter()
    var offset: UInt32 = 0
    for list in map.colorRuns {
      colorRuns.u32(offset)
      offset += UInt32(list.count)
    }
    colorRuns.u32(offset)
    for list in map.colorRuns { for k in list { colorRuns.u32(k) } }
    sections.append((.colorRuns, UInt64(map.runs.count), colorRuns.bytes))

    var ext = ByteWriter(capacity: map.extents.count * extentRecordSize)
    for e in map.extents {
      ext.u64(e.start)
      ext.u64(e.count)
      ext.u64(e.file?.inode ?? 0)
      ext.u64(e.file?.index ?? 0)
      ext.u32(e.file?.device ?? 0)
      ext.u32(e.path.flatMap { pathIndex[$0] } ?? noneRef)
      ext.u32(e.owner ?? noneRef)
      ext.u32(e.file == nil ? 0 : 1)
    }
    sections.append((.extents, UInt64(map.extents.count), ext.bytes))

    var pathBytes = ByteWriter()
    for p in paths {
      let b = Array(p.utf8.prefix(maxPathBytes))
      pathBytes.u32(UInt32(b.count))
      pathBytes.raw(b)
    }
    sections.append((.paths, UInt64(paths.count), pathBytes.bytes))

    // Layout: header, directory, then each section at an 8-aligned offset.
    let h = map.header
    var out = ByteWriter(capacity: frames.count + runs.count + ext.count + 4096)
    out.raw(magic)
    out.u16(version)
    out.u16(UInt16(headerSize))
    out.u32(UInt32(sections.count))
    out.u32(h.pageSize)
    out.u32(h.sources.rawValue)
    out.u64(map.frameCount)
    out.u64(UInt64(bitPattern: h.created))
    let fileSizeOffset = out.count
    out.u64(0)  // file size, patched below
    out.u32(h.image.algorithm.rawValue)
    out.u32(0)
    out.u64(h.image.size)
    let digest = Array(h.image.bytes.prefix(32))
    out.raw(digest)
    out.zeros(32 - digest.count)
    out.zeros(headerSize - out.count)

    var offsets: [UInt64] = []
    var next = headerSize + sections.count * sectionEntrySize
    for (_, _, body) in sections {
      next = (next + 7) & ~7
      offsets.append(UInt64(next))
      next += body.count
    }
    for (i, (kind, items, body)) in sections.enumerated() {
      out.u32(kind.rawValue)
      out.u32(sectionRequired)
      out.u64(offsets[i])
      out.u64(UInt64(body.count))
      out.u64(items)
    }
    for (_, _, body) in sections {
      out.align(8)
      out.raw(body)
    }
    out.align(8)
    out.raw(trailerMagic)
    out.patchU64(UInt64(out.count + 8), at: fileSizeOffset)
    var bytes = out.bytes
    let sum = XXH64.hash(bytes)
    for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i)))) }
    return bytes
  }
}
