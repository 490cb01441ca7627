/// XXH64, the 64-bit xxHash (seed 0 unless given): the checksum of color map files and the
/// digest of the inputs they describe. Fast enough to check a 4 Mi-frame map in milliseconds.
///
/// Written from the published algorithm description. Unaligned loads are confined to this file.
/// Kept rather than Debian's libxxhash (measured, host/bench/libs/run.sh, one run, 256 MiB):
/// this 4.2-8.9 GB/s, libxxhash XXH64 3.9-6.3 and XXH3 4.0-5.9 (RAM-sized inputs are
/// memory-bound); the static agent, which hashes its hint region with this, needs no C library.
/// The RAM digest of new maps (algorithm 3, KscopeSnapshot's BlockTreeDigest) is XXH3-128 per
/// block through libxxhash, so that blocks hash independently on both cores; maps with the XXH64
/// block digest (algorithm 2) are still checked with this.
public struct XXH64: Sendable {
  static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
  static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
  static let p3: UInt64 = 0x1656_67B1_9E37_79F9
  static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
  static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

  private var v1, v2, v3, v4: UInt64
  private let seed: UInt64
  private var total: UInt64 = 0
  private var pending: [UInt8] = []  // fewer than 32 bytes not yet consumed

  public init(seed: UInt64 = 0) {
    self.seed = seed
    v1 = seed &+ XXH64.p1 &+ XXH64.p2
    v2 = seed &+ XXH64.p2
    v3 = seed
    v4 = seed &- XXH64.p1
  }

  /// One-shot hash of a byte array.
  public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
    var h = XXH64(seed: seed)
    h.update(bytes)
    return h.finish()
  }

  /// One-shot hash of a slice (e.g. a file without its trailing checksum).
  public static func hash(_ bytes: ArraySlice<UInt8>, seed: UInt64 = 0) -> UInt64 {
    var h = XXH64(seed: seed)
    h.update(bytes)
    return h.finish()
  }

  @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
    var a = acc &+ input &* p2
    a = (a << 31) | (a >> 33)
    return a &* p1
  }

  @inline(__always) static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
    (acc ^ round(0, v)) &* p1 &+ p4
  }

  public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

  public mutating func update(_ bytes: ArraySlice<UInt8>) { bytes.withUnsafeBytes { update($0) } }

  /// Hashes bytes in place (a mapped RAM file need not be copied).
  public mutating func update(_ raw: UnsafeRawBufferPointer) {
    total &+= UInt64(raw.count)
    var at = 0
    if !pending.isEmpty {
      let take = min(32 - pending.count, raw.count)
      pending += raw[0..<take]
      at = take
      if pending.count < 32 { return }
      let block = pending
      pending = []
      block.withUnsafeBytes { consumeStripes($0, from: 0, count: 32) }
    }
    let whole = (raw.count - at) & ~31
    if whole > 0 { consumeStripes(raw, from: at, count: whole) }
    pending = Array(raw[(at + whole)...])
  }

  /// Consumes `count` bytes (a multiple of 32) starting at `from`.
  private mutating func consumeStripes(_ raw: UnsafeRawBufferPointer, from: Int, count: Int) {
    var a = v1, b = v2, c = v3, d = v4
    var i = from
    let end = from + count
    while i + 32 <= end {
      a = XXH64.round(a, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
      b = XXH64.round(b, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)))
      c = XXH64.round(c, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)))
      d = XXH64.round(d, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)))
      i += 32
    }
    v1 = a; v2 = b; v3 = c; v4 = d
  }

  public func finish() -> UInt64 {
    var h: UInt64
    if total >= 32 {
      h = ((v1 << 1) | (v1 >> 63)) &+ ((v2 << 7) | (v2 >> 57))
        &+ ((v3 << 12) | (v3 >> 52)) &+ ((v4 << 18) | (v4 >> 46))
      h = XXH64.merge(h, v1)
      h = XXH64.merge(h, v2)
      h = XXH64.merge(h, v3)
      h = XXH64.merge(h, v4)
    } else {
      h = seed &+ XXH64.p5
    }
    h &+= total
    var i = 0
    let p = pending
    while i + 8 <= p.count {
      var k: UInt64 = 0
      for j in 0..<8 { k |= UInt64(p[i + j]) << (8 * UInt64(j)) }
      h ^= XXH64.round(0, k)
      h = ((h << 27) | (h >> 37)) &* XXH64.p1 &+ XXH64.p4
      i += 8
    }
    if i + 4 <= p.count {
      var k: UInt64 = 0
      for j in 0..<4 { k |= UInt64(p[i + j]) << (8 * UInt64(j)) }
      h ^= k &* XXH64.p1
      h = ((h << 23) | (h >> 41)) &* XXH64.p2 &+ XXH64.p3
      i += 4
    }
    while i < p.count {
      h ^= UInt64(p[i]) &* XXH64.p5
      h = ((h << 11) | (h >> 53)) &* XXH64.p1
      i += 1
    }
    h ^= h >> 33
    h &*= XXH64.p2
    h ^= h >> 29
    h &*= XXH64.p3
    h ^= h >> 32
    return h
  }
}
