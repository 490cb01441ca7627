import Testing

@testable import KscopeCore

#if canImport(Glibc)
  import Glibc
#endif

/// Color maps come from other hosts: any byte string must decode to a valid map or a one-line
/// error, quickly. A seeded mutation fuzzer that runs in CI (KSCOPE_FUZZ_ITERATIONS for longer
/// runs, KSCOPE_FUZZ_SEED to reproduce); `ColorMapFuzz.reseal` puts mutated bytes back behind a
/// valid size and checksum so they reach the section decoders.
@Suite struct ColorMapFuzzTests {
  static var iterations: Int {
    getenv("KSCOPE_FUZZ_ITERATIONS").flatMap { Int(String(cString: $0)) } ?? 1500
  }
  static var seed: UInt64 {
    getenv("KSCOPE_FUZZ_SEED").flatMap { UInt64(String(cString: $0)) } ?? 0x6b63_6d66_757a
  }

  static func corpus() -> [[UInt8]] {
    [
      ColorMapFormat.encode(sampleMap(frames: 300, seed: 1)),
      ColorMapFormat.encode(sampleMap(frames: 4000, seed: 2)),
      ColorMapFormat.encode(
        ColorMap(
          header: ColorMapHeader(),
          entries: [UInt16](repeating: FrameEntry(.free).rawValue, count: 64), extents: [])),
    ]
  }

  @Test func mutationsDecodeOrFailQuickly() {
    var g = SplitMix64(seed: Self.seed)
    let corpus = Self.corpus()
    let clock = ContinuousClock()
    var slowest = Duration.zero
    var pastChecksum = 0
    for i in 0..<Self.iterations {
      let base = corpus.randomElement(using: &g)!
      var m = HintDamage.mutate(base, using: &g)
      if i % 2 == 0 { m = ColorMapFuzz.reseal(m) }
      let t = clock.now
      do {
        let map = try ColorMapFormat.decode(m)
        // What was accepted describes no more frames than the format allows and re-encodes.
        #expect(map.frameCount <= ColorMapFormat.maxFrames)
        if map.frameCount <= 1 << 20 { _ = ColorMapFormat.encode(map) }
      } catch {
        if case .checksumMismatch = error {} else { pastChecksum += 1 }
        #expect(!error.description.contains("\n"))
      }
      slowest = max(slowest, clock.now - t)
    }
    #expect(slowest < .seconds(1))
    #expect(pastChecksum > Self.iterations / 4)
  }

  @Test func randomByteStrings() {
    var g = SplitMix64(seed: Self.seed ^ 1)
    for i in 0..<Self.iterations {
      var b = HintDamage.randomBytes(maxLength: 2000, using: &g)
      if i % 2 == 0, b.count >= 8 { for j in 0..<8 { b[j] = ColorMapFormat.magic[j] } }
      _ = try? ColorMapFormat.decode(ColorMapFuzz.reseal(b))
    }
  }
}
