import Testing

@testable import KscopeCore

/// A map with realistic structure: runs of random colors and lengths, some page-cache extents
/// with paths and owners.
func sampleMap(frames: Int, seed: UInt64 = 1) -> ColorMap {
  var rng = SplitMix64(seed: seed)
  var entries = [UInt16]()
  entries.reserveCapacity(frames)
  var extents: [AttributeExtent] = []
  while entries.count < frames {
    let color = Color.allCases[Int(rng.next() % UInt64(Color.allCases.count))]
    let length = min(frames - entries.count, Int(1 + rng.next() % 300))
    let start = UInt64(entries.count)
    for i in 0..<length {
      let flags: PageFlags = i % 7 == 0 ? [.mapped, .referenced] : []
      entries.append(FrameEntry(color, flags).rawValue)
    }
    if color == .pageCache && length > 2 {
      extents.append(
        AttributeExtent(
          start: start + 1, count: UInt64(length - 2),
          file: FileIdentity(device: 0x0080_0001, inode: 10 + rng.next() % 5, index: rng.next() % 1000),
          path: rng.next() % 2 == 0 ? "/srv/www/file\(rng.next() % 9).html" : nil,
          owner: rng.next() % 3 == 0 ? UInt32(rng.next() % 5000) : nil))
    }
  }
  let header = ColorMapHeader(
    pageSize: 4096, sources: [.kernelPageFlags, .kernelResourceMap], created: 1_764_000_000,
    image: .xxh64(0x1234_5678_9ABC_DEF0, size: UInt64(frames) * 8), kernelRelease: "6.1.0-56-cloud-amd64",
    kernelBuildID: "00112233445566778899aabbccddeeff00112233",
    metadata: [("generator", "test"), ("source.kpageflags", "/proc/kpageflags")])
  return ColorMap(header: header, entries: entries, extents: extents)
}

func expectSameMap(_ a: ColorMap, _ b: ColorMap) {
  #expect(a.header == b.header)
  #expect(a.entries == b.entries)
  #expect(a.runs == b.runs)
  #expect(a.colorRuns == b.colorRuns)
  #expect(a.extents == b.extents)
  #expect(a.totals == b.totals)
}

/// Recomputes the trailing checksum after a deliberate edit, so the structural checks behind
/// the checksum are what gets tested.
func reseal(_ bytes: inout [UInt8]) {
  let sum = XXH64.hash(bytes[0..<(bytes.count - 8)])
  for i in 0..<8 { bytes[bytes.count - 8 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
}

func put64(_ bytes: inout [UInt8], _ at: Int, _ v: UInt64) {
  for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
}
func put32(_ bytes: inout [UInt8], _ at: Int, _ v: UInt32) {
  for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
}

/// (offset, length, items, directory entry offset) of a section in an encoded map.
func section(_ bytes: [UInt8], _ kind: ColorMapFormat.SectionKind) -> (Int, Int, UInt64, Int) {
  let r = ByteReader(bytes)
  let n = Int(try! r.u32(at: 12))
  for i in 0..<n {
    let at = 128 + 32 * i
    if try! r.u32(at: at) == kind.rawValue {
      return (Int(try! r.u64(at: at + 8)), Int(try! r.u64(at: at + 16)), try! r.u64(at: at + 24), at)
    }
  }
  fatalError("no section \(kind)")
}

func decodeError(_ bytes: [UInt8]) -> ColorMapError? {
  do {
    _ = try ColorMapFormat.decode(bytes)
    return nil
  } catch {
    return error
  }
}

@Test(arguments: [1, 2, 7, 1000, 65_537])
func roundTripSmallMaps(frames: Int) throws {
  let map = sampleMap(frames: frames, seed: UInt64(frames))
  let bytes = ColorMapFormat.encode(map)
  let back = try ColorMapFormat.decode(bytes)
  expectSameMap(map, back)
  #expect(ColorMapFormat.encode(back) == bytes, "encoding is deterministic")
}

@Test func roundTrip4MiFrames() throws {
  let map = sampleMap(frames: 4 << 20, seed: 99)
  let bytes = ColorMapFormat.encode(map)
  // At most 2 bytes per frame for color and flags, plus the indices.
  let (_, framesLength, _, _) = section(bytes, .frames)
  #expect(framesLength == 2 * (4 << 20))
  let back = try ColorMapFormat.decode(bytes)
  #expect(back.entries == map.entries)
  #expect(back.runs.count == map.runs.count)
  #expect(back.extents == map.extents)
}

@Test func emptyMapRoundTrips() throws {
  let map = ColorMap(header: ColorMapHeader(), entries: [])
  let back = try ColorMapFormat.decode(ColorMapFormat.encode(map))
  #expect(back.frameCount == 0)
  #expect(back.runs.isEmpty)
}

@Test func framesSectionIsAlignedForMapping() {
  let bytes = ColorMapFormat.encode(sampleMap(frames: 333))
  let (offset, _, _, _) = section(bytes, .frames)
  #expect(offset % 8 == 0)
  // Frame i's entry is at offset + 2i, little-endian.
  let map = sampleMap(frames: 333)
  for i in [0, 1, 100, 332] {
    #expect(UInt16(bytes[offset + 2 * i]) | UInt16(bytes[offset + 2 * i + 1]) << 8 == map.entries[i])
  }
}

// MARK: - Corruption: each class has its own error.

@Test func truncationIsRejected() {
  let bytes = ColorMapFormat.encode(sampleMap(frames: 5000))
  #expect(decodeError(Array(bytes.dropLast(1))) == .truncated(size: bytes.count - 1, expected: UInt64(bytes.count)))
  #expect(decodeError(Array(bytes.prefix(bytes.count / 2)))
    == .truncated(size: bytes.count / 2, expected: UInt64(bytes.count)))
  #expect(decodeError(Array(bytes.prefix(100))) == .tooShort(size: 100))
  #expect(decodeError([]) == .tooShort(size: 0))
  #expect(decodeError(bytes + [0]) == .trailingBytes(size: bytes.count + 1, expected: UInt64(bytes.count)))
}

@Test func wrongMagicIsRejected() {
  var bytes = ColorMapFormat.encode(sampleMap(frames: 10))
  bytes[1] = UInt8(ascii: "E")  // "\x7fELF" is the classic mistake
  #expect(decodeError(bytes) == .notAColorMap)
  #expect(decodeError(Array("not a color map at all, just some text in a file....".utf8) + [UInt8](repeating: 0, count: 200)) == .notAColorMap)
}

@Test func wrongVersionIsRejected() {
  var bytes = ColorMapFormat.encode(sampleMap(frames: 10))
  bytes[8] = 2
  reseal(&bytes)
  #expect(decodeError(bytes) == .unsupportedVersion(2))
}

@Test func everyFlippedBitIsRejected() {
  let bytes = ColorMapFormat.encode(sampleMap(frames: 40, seed: 3))
  for bit in 0..<(bytes.count * 8) {
    var b = bytes
    b[bit / 8] ^= 1 << UInt8(bit % 8)
    #expect(decodeError(b) != nil, "bit \(bit) flipped was accepted")
  }
}

@Test func checksumMismatchIsItsOwnError() {
  var bytes = ColorMapFormat.encode(sampleMap(frames: 1000))
  let (offset, _, _, _) = section(bytes, .frames)
  bytes[offset + 10] ^= 0x01
  guard case .checksumMismatch = decodeError(bytes) else {
    Issue.record("expected a checksum mismatch, got \(String(describing: decodeError(bytes)))")
    return
  }
}

@Test func badRunIndexIsRejected() {
  let map = sampleMap(frames: 2000, seed: 5)
  let good = ColorMapFormat.encode(map)
  let (runs, _, _, _) = section(good, .runs)
  // A run one frame too long.
  var b = good
  put32(&b, runs + 8, UInt32(map.runs[0].count + 1))
  reseal(&b)
  guard case .badRunIndex = decodeError(b) else {
    Issue.record("longer run: \(String(describing: decodeError(b)))")
    return
  }
  // A run whose color disagrees with its frames.
  b = good
  b[runs + 12] = (map.runs[0].color == .free ? Color.zero : Color.free).rawValue
  reseal(&b)
  guard case .badRunIndex = decodeError(b) else {
    Issue.record("wrong color: \(String(describing: decodeError(b)))")
    return
  }
  // The per-color index naming a run of another color.
  b = good
  let (colorRuns, length, _, _) = section(good, .colorRuns)
  put32(&b, colorRuns + length - 4, 0)
  reseal(&b)
  guard case .badRunIndex = decodeError(b) else {
    Issue.record("per-color index: \(String(describing: decodeError(b)))")
    return
  }
}

@Test func oversizedCountsAreRejected() {
  let good = ColorMapFormat.encode(sampleMap(frames: 500))
  var b = good
  put64(&b, 24, 1 << 40)  // frame count
  reseal(&b)
  #expect(decodeError(b) == .oversized(what: "frames", count: 1 << 40, limit: ColorMapFormat.maxFrames))
  b = good
  put32(&b, 12, 100_000)  // section count
  reseal(&b)
  #expect(decodeError(b) == .oversized(what: "sections", count: 100_000, limit: 64))
  b = good
  let (_, _, _, dir) = section(good, .runs)
  put64(&b, dir + 24, 1 << 50)  // run count
  reseal(&b)
  #expect(decodeError(b) == .oversized(what: "runs", count: 1 << 50, limit: 500))
  b = good
  let (_, _, _, pdir) = section(good, .paths)
  put64(&b, pdir + 24, 1 << 30)
  reseal(&b)
  guard case .oversized = decodeError(b) else {
    Issue.record("paths: \(String(describing: decodeError(b)))")
    return
  }
}

@Test func inconsistentTotalsAndFramesAreRejected() {
  let map = sampleMap(frames: 300, seed: 11)
  let good = ColorMapFormat.encode(map)
  var b = good
  let (totals, _, _, _) = section(good, .colorTotals)
  put64(&b, totals + 8 * Int(map.runs[0].color.rawValue), 1)
  reseal(&b)
  guard case .badTotals = decodeError(b) else {
    Issue.record("totals: \(String(describing: decodeError(b)))")
    return
  }
  b = good
  let (frames, _, _, _) = section(good, .frames)
  b[frames] = 31
  reseal(&b)
  #expect(decodeError(b) == .badFrame(frame: 0, code: 31))
}

@Test func badExtentsAreRejected() {
  let map = sampleMap(frames: 20_000, seed: 2)
  #expect(map.extents.count >= 2)
  let good = ColorMapFormat.encode(map)
  let (ext, _, _, _) = section(good, .extents)
  var b = good
  put64(&b, ext + 48, 0)  // second extent starts before the first ends
  reseal(&b)
  guard case .badAttributes = decodeError(b) else {
    Issue.record("order: \(String(describing: decodeError(b)))")
    return
  }
  b = good
  put32(&b, ext + 36, 777)  // path reference out of range
  reseal(&b)
  guard case .badAttributes = decodeError(b) else {
    Issue.record("path ref: \(String(describing: decodeError(b)))")
    return
  }
}

@Test func unknownSectionsFollowTheirRequiredFlag() throws {
  // A map without extents: its paths section is empty and can be relabelled.
  let map = ColorMap(header: ColorMapHeader(), entries: [1, 1, 2, 3])
  let good = ColorMapFormat.encode(map)
  let (_, _, _, dir) = section(good, .paths)
  var b = good
  put32(&b, dir, 99)
  reseal(&b)
  #expect(decodeError(b) == .unknownRequiredSection(kind: 99))
  put32(&b, dir + 4, 0)  // optional: skipped
  reseal(&b)
  #expect(try ColorMapFormat.decode(b).entries == map.entries)
  b = good
  let (_, _, _, fdir) = section(good, .frames)
  put32(&b, fdir, 98)
  put32(&b, fdir + 4, 0)
  reseal(&b)
  #expect(decodeError(b) == .missingSection("frames"))
}

@Test func randomMutationsNeverCrashTheReader() {
  var rng = SplitMix64(seed: 2024)
  let good = ColorMapFormat.encode(sampleMap(frames: 700, seed: 8))
  var accepted = 0
  for round in 0..<3000 {
    var b = good
    switch rng.next() % 4 {
    case 0:
      for _ in 0..<(1 + rng.next() % 8) {
        b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next())
      }
    case 1: b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
    case 2:
      let at = Int(rng.next() % UInt64(b.count))
      b.insert(contentsOf: (0..<(1 + rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
    default:
      // Structured damage behind a valid checksum: a random 64-bit field.
      let at = Int(rng.next() % UInt64(b.count - 16)) & ~7
      put64(&b, at, rng.next() >> (rng.next() % 64))
    }
    if b.count >= 16 && round % 2 == 0 { reseal(&b) }
    if let map = try? ColorMapFormat.decode(b) {
      // Whatever is accepted must be a consistent map.
      accepted += 1
      #expect((try? ColorMapFormat.decode(ColorMapFormat.encode(map))) != nil)
    }
  }
  #expect(accepted < 300)
}

@Test func errorDescriptionsAreOneLine() {
  let errors: [ColorMapError] = [
    .tooShort(size: 3), .notAColorMap, .unsupportedVersion(9), .badHeader("x"),
    .truncated(size: 1, expected: 2), .trailingBytes(size: 3, expected: 2),
    .checksumMismatch(stored: 1, computed: 2), .oversized(what: "frames", count: 1, limit: 0),
    .missingSection("frames"), .unknownRequiredSection(kind: 9), .badSection("paths", reason: "x"),
    .badFrame(frame: 1, code: 30), .badTotals(color: "free", stored: 1, counted: 2),
    .badRunIndex("x"), .badAttributes("x"), .badMetadata("x"),
  ]
  for e in errors {
    #expect(!e.description.contains("\n"))
    #expect(!e.description.isEmpty)
  }
  #expect(Set(errors.map(\.description)).count == errors.count)
}

/// A 16-byte image digest (XXH3-128 block tree) survives the file format, its text is the
/// value as xxhsum prints it (high half first), and a byte past the algorithm's length is
/// refused.
@Test func blockTreeDigestRoundTrips() throws {
  var map = sampleMap(frames: 300)
  map.header.image = .xxh128(low: 0x0011_2233_4455_6677, high: 0x8899_AABB_CCDD_EEFF, size: 1 << 29)
  #expect(map.header.image.bytes.count == 16)
  #expect(map.header.image.text == "xxh3-tree:8899aabbccddeeff0011223344556677")
  var bytes = ColorMapFormat.encode(map)
  #expect(try ColorMapFormat.decode(bytes).header.image == map.header.image)
  bytes[64 + 16] = 1
  reseal(&bytes)
  #expect(throws: ColorMapError.self) { try ColorMapFormat.decode(bytes) }
}
