import Testing

@testable import KscopeCore

/// Reference values from the reference implementation (Python's xxhash package).
@Test func xxh64MatchesReferenceValues() {
  let cases: [([UInt8], UInt64)] = [
    ([], 0xef46_db37_51d8_e999),
    (Array("a".utf8), 0xd24e_c4f1_a98c_6e5b),
    (Array("abc".utf8), 0x44bc_2cf5_ad77_0999),
    (Array((0..<3).flatMap { _ in (0..<256).map { UInt8($0) } }), 0x8e03_c838_c596_036f),
    ([UInt8](repeating: UInt8(ascii: "x"), count: 31), 0x60dd_0d01_083b_99f0),
    ([UInt8](repeating: UInt8(ascii: "y"), count: 32), 0x64da_1f1d_3495_ce66),
    ([UInt8](repeating: UInt8(ascii: "z"), count: 33), 0xc524_1253_c64e_0268),
    ((0..<100).map { UInt8($0) }, 0x6ac1_e580_3216_6597),
  ]
  for (input, expected) in cases {
    #expect(XXH64.hash(input) == expected, "length \(input.count)")
  }
}

@Test func xxh64StreamingEqualsOneShot() {
  var rng = SplitMix64(seed: 7)
  let data = (0..<10_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
  for chunk in [1, 3, 31, 32, 33, 1000] {
    var h = XXH64()
    var i = 0
    while i < data.count {
      h.update(data[i..<min(i + chunk, data.count)])
      i += chunk
    }
    #expect(h.finish() == XXH64.hash(data), "chunk \(chunk)")
  }
}
