/// Ways to damage a hint region, for the reader's robustness tests and the agent's
/// `--garbage` mode (a guest that writes garbage must leave the host working).
public enum HintDamage {
  /// Values that sit on boundaries the reader checks.
  static let interesting: [UInt64] = [
    0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000,
    0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, .max, .max - 1,
    4096, 4095, 1 << 20, 1 << 30, 1 << 32,
  ]

  /// A random byte string of a random length up to `maxLength`.
  public static func randomBytes<G: RandomNumberGenerator>(maxLength: Int, using g: inout G) -> [UInt8] {
    let n = Int.random(in: 0...maxLength, using: &g)
    return (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
  }

  /// One to eight random mutations: bit flips, boundary values written over fields, runs of
  /// bytes copied from elsewhere, truncation or extension.
  public static func mutate<G: RandomNumberGenerator>(_ input: [UInt8], using g: inout G) -> [UInt8] {
    var b = input
    for _ in 0..<Int.random(in: 1...8, using: &g) {
      guard !b.isEmpty else {
        b = [UInt8.random(in: 0...255, using: &g)]
        continue
      }
      // Favour the header and directory, where one byte changes the meaning of everything.
      let hot = Int.random(in: 0..<4, using: &g) == 0 ? b.count : min(b.count, 512)
      let at = Int.random(in: 0..<hot, using: &g)
      switch Int.random(in: 0..<7, using: &g) {
      case 0:
        b[at] ^= 1 << UInt8.random(in: 0..<8, using: &g)
      case 1:
        b[at] = UInt8.random(in: 0...255, using: &g)
      case 2, 3:
        let v = interesting.randomElement(using: &g)!
        let width = [1, 2, 4, 8].randomElement(using: &g)!
        let start = at & ~(width - 1)
        for i in 0..<width where start + i < b.count {
          b[start + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))
        }
      case 4:
        let n = Int.random(in: 1...64, using: &g)
        let from = Int.random(in: 0..<b.count, using: &g)
        for i in 0..<n where from + i < b.count && at + i < b.count { b[at + i] = b[from + i] }
      case 5:
        b.removeLast(Int.random(in: 0...min(b.count, 4096), using: &g))
      default:
        b += (0..<Int.random(in: 1...64, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
      }
    }
    return b
  }

  /// Makes damaged bytes pass the outer checks again, so the damage reaches the section
  /// decoders "behind a valid checksum": magic and version restored, the region size set to
  /// the real size, the generation made even, the used size clamped, the checksum recomputed.
  public static func reseal(_ input: [UInt8]) -> [UInt8] {
    guard input.count >= HintFormat.headerSize else { return input }
    var b = input
    func put(_ v: UInt64, _ n: Int, at o: Int) {
      for i in 0..<n { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
    for i in 0..<8 { b[i] = HintFormat.magic[i] }
    put(UInt64(HintFormat.version), 2, at: HintFormat.versionOffset)
    put(UInt64(HintFormat.headerSize), 2, at: HintFormat.headerSizeOffset)
    put(UInt64(b.count), 8, at: HintFormat.regionSizeOffset)
    b[HintFormat.generationOffset] &= 0xFE
    let used = (try? ByteReader(b).u64(at: HintFormat.usedSizeOffset)) ?? 0
    let clamped = min(max(used, UInt64(HintFormat.headerSize)), UInt64(b.count)) & ~7
    put(clamped, 8, at: HintFormat.usedSizeOffset)
    put(HintFormat.checksum(b[0..<Int(clamped)]), 8, at: HintFormat.checksumOffset)
    return b
  }
}
