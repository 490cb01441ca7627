import KscopeCore
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The guest is untrusted: any byte string must give a valid hint set or an error. A seeded
/// mutation fuzzer that runs in CI (set KSCOPE_FUZZ_ITERATIONS for longer runs, and
/// KSCOPE_FUZZ_SEED to reproduce). A crash, a trap (out-of-bounds, overflow) or a hang fails
/// the test run; every decode must also finish well within a second.
@Suite struct HintFuzzTests {
  static var iterations: Int {
    getenv("KSCOPE_FUZZ_ITERATIONS").flatMap { Int(String(cString: $0)) } ?? 4000
  }
  static var seed: UInt64 {
    getenv("KSCOPE_FUZZ_SEED").flatMap { UInt64(String(cString: $0)) } ?? 0x6b73_636f_7065
  }

  /// Valid regions of several shapes (including partial ones) to mutate.
  static func corpus() throws -> [[UInt8]] {
    var out: [[UInt8]] = []
    out.append(try region(sampleContent(), size: 1 << 14))
    out.append(try region(sampleContent(frames: 64, files: 0), size: 4096))
    out.append(try region(sampleContent(frames: 20000, files: 40), size: 8192))
    var raw = sampleContent(frames: 0, files: 3)
    raw.frames = FrameClassTable(entries: (0..<500).map { FrameEntry($0 % 2 == 0 ? .free : .zero).rawValue })
    out.append(try region(raw, size: 4096))
    var bare = sampleContent(files: 1)
    bare.kernel = KernelSymbolHints()
    bare.frames = nil
    out.append(try region(bare, size: 4096))
    return out
  }

  /// What a decoded set may hold, against the region's size: the reader's allocations follow
  /// these counts, so they bound its memory by the region.
  static func checkBounded(_ h: HintSet, size: Int) {
    #expect(Int(h.regionSize) == size)
    #expect(h.files.count * 72 <= size)
    #expect((h.frames?.largestArrayBytes ?? 0) <= size)
    #expect(h.files.reduce(0) { $0 + $1.extents.count } * 24 <= size)
  }

  func decodeTimed(_ bytes: [UInt8]) -> (HintSet?, Duration) {
    let clock = ContinuousClock()
    let start = clock.now
    let h = try? HintFormat.decode(bytes)
    return (h, clock.now - start)
  }

  @Test func mutationsOfValidRegions() throws {
    var g = SplitMix64(seed: Self.seed)
    let corpus = try Self.corpus()
    var accepted = 0
    var slowest = Duration.zero
    for _ in 0..<Self.iterations {
      let base = corpus.randomElement(using: &g)!
      let m = HintDamage.mutate(base, using: &g)
      let (h, t) = decodeTimed(m)
      slowest = max(slowest, t)
      if let h {
        accepted += 1
        Self.checkBounded(h, size: m.count)
      }
    }
    #expect(slowest < .seconds(1))
    // Mutations nearly always break the checksum; a few land in ignored bytes past `used`.
    #expect(accepted < Self.iterations)
  }

  @Test func structuredDamageBehindValidChecksums() throws {
    var g = SplitMix64(seed: Self.seed ^ 1)
    let corpus = try Self.corpus()
    var accepted = 0
    var roundTrips = 0
    var rejectedPastChecksum = 0
    for _ in 0..<Self.iterations {
      let base = corpus.randomElement(using: &g)!
      let m = HintDamage.reseal(HintDamage.mutate(base, using: &g))
      let (h, t) = decodeTimed(m)
      #expect(t < .seconds(1))
      if let h {
        accepted += 1
        Self.checkBounded(h, size: m.count)
        // Whatever was accepted re-encodes and decodes to the same thing.
        let c = HintContent(
          kernelRelease: h.kernelRelease, buildID: h.buildID, published: h.published,
          pageSize: h.pageSize, kernel: h.kernel, frames: h.frames, files: Array(h.files),
          metadata: h.metadata, incomplete: h.partial)
        // Every accepted set takes the round trip: an encoder failure is a test failure.
        let again = try HintFormat.encode(c, regionSize: m.count, generation: h.generation)
        let h2 = try HintFormat.decode(again.bytes + [UInt8](repeating: 0, count: m.count - again.bytes.count))
        roundTrips += 1
        #expect(h2.kernel == h.kernel)
        #expect(h2.kernelRelease == h.kernelRelease && h2.buildID == h.buildID && h2.generation == h.generation)
        // Unless the re-encoding had to cut the table (the writer reserves room for its notes,
        // a forged region need not), the frames come back the same.
        if !again.notes.contains(where: { $0.hasPrefix("partial.frames") }) {
          #expect(h2.frames == h.frames, "\(again.notes)")
        }
      } else if m.count >= HintFormat.headerSize {
        do { _ = try HintFormat.decode(m) } catch {
          if case .checksumMismatch = error {} else { rejectedPastChecksum += 1 }
        }
      }
    }
    // The damage must reach the section decoders, not stop at the checksum.
    #expect(rejectedPastChecksum > Self.iterations / 4)
    #expect(accepted > 0 && roundTrips == accepted)
  }

  @Test func randomByteStrings() {
    var g = SplitMix64(seed: Self.seed ^ 2)
    for i in 0..<Self.iterations {
      var b = HintDamage.randomBytes(maxLength: 9000, using: &g)
      // Half of them start like a region, so they get past the magic.
      if i % 2 == 0, b.count >= 8 { for j in 0..<8 { b[j] = HintFormat.magic[j] } }
      let (h, t) = decodeTimed(b)
      #expect(t < .seconds(1))
      #expect(h == nil)
    }
  }
}
