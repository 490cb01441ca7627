import Foundation
import KscopeCore
import KscopeKernelImage
import KscopeLayout
import KscopeTestSupport
import Testing

@testable import KscopeAgent

/// The BTF section of the hint region (kind 5): the agent's compression, the format's
/// structure checks, and the host's decompression with its size and checksum checks.
@Suite struct HintBTFTests {
  /// A small valid BTF blob: header, `int` and `struct s { int a; int b:3; }`, strings.
  static func sampleBlob() -> [UInt8] {
    var types: [UInt8] = []
    func word(_ v: UInt32) { types += withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    let words: [UInt32] = [
      1, 1 << 24, 4, 1 << 24 | 32,  // [1] INT "int": name 1, kind 1, size 4, signed, 32 bits
      5, 1 << 31 | 4 << 24 | 2, 8,  // [2] STRUCT "s": kind_flag (bitfield offsets), 2 members, 8 bytes
      7, 1, 0,  // a: int at bit 0
      9, 1, 3 << 24 | 32,  // b: int, 3 bits, at bit 32
    ]
    for w in words { word(w) }
    let strings = Array("\0int\0s\0a\0b\0".utf8)
    var b: [UInt8] = [0x9F, 0xEB, 1, 0]
    for v in [UInt32(24), 0, UInt32(types.count), UInt32(types.count), UInt32(strings.count)] {
      b += withUnsafeBytes(of: v.littleEndian) { Array($0) }
    }
    return b + types + strings
  }

  static func published(_ raw: [UInt8]) throws -> PublishedBTF {
    let path = NSTemporaryDirectory() + "kscope-btf-\(getpid())-\(UUID().uuidString)"
    try Data(raw).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    guard case .published(let p) = KernelBTF.read(path) else {
      throw TestFailure("the agent did not read \(path)")
    }
    return p
  }

  /// The directory entry of a kind: (offset, length) of its section.
  static func section(_ bytes: [UInt8], kind: UInt32) -> (offset: Int, length: Int)? {
    let r = ByteReader(bytes)
    let n = Int((try? r.u32(at: 56)) ?? 0)
    for i in 0..<n {
      let at = HintFormat.headerSize + 32 * i
      if (try? r.u32(at: at)) == kind, let o = try? r.u64(at: at + 8),
        let l = try? r.u64(at: at + 16)
      {
        return (Int(o), Int(l))
      }
    }
    return nil
  }

  @Test func roundTrip() throws {
    let raw = Self.sampleBlob()
    _ = try BTF(raw)  // the sample itself is valid BTF
    var c = sampleContent()
    c.btf = try Self.published(raw)
    let h = try HintFormat.decode(try region(c))
    #expect(!h.partial)
    #expect(h.btf == c.btf)
    #expect(h.btf?.size == UInt64(raw.count))
    #expect(try PublishedBTFBlob.decompress(try #require(h.btf)) == raw)
    let btf = try PublishedBTFBlob.parse(try #require(h.btf))
    #expect(btf.bytes == raw)
    // Everything else is still there.
    #expect(h.frames == c.frames && h.files.count == c.files.count && h.kernel == c.kernel)
  }

  @Test func agentReadsAbsentAndForeignFiles() throws {
    guard case .absent = KernelBTF.read("/nonexistent/kscope/btf") else {
      Issue.record("a missing BTF file is not 'absent'")
      return
    }
    let path = NSTemporaryDirectory() + "kscope-notbtf-\(getpid())"
    try Data(repeating: 0x41, count: 100).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    guard case .failed(let why) = KernelBTF.read(path) else {
      Issue.record("a non-BTF file was published")
      return
    }
    #expect(why.contains("not a BTF blob"))
  }

  /// The BTF comes after the frame table and before the files; whole or not at all.
  @Test func btfThatDoesNotFitIsLeftOutAndNoted() throws {
    var noise = SplitMix64(seed: 7)
    var raw = Self.sampleBlob()
    raw += (0..<20_000).map { _ in UInt8(truncatingIfNeeded: noise.next()) }  // incompressible
    var c = sampleContent()
    c.btf = try Self.published(raw)
    let e = try HintFormat.encode(c, regionSize: 16 << 10, generation: 2)
    let h = try HintFormat.decode(
      e.bytes + [UInt8](repeating: 0, count: (16 << 10) - e.bytes.count))
    #expect(h.btf == nil)
    #expect(h.partial)
    #expect(h.metadata("partial.btf")?.contains("does not fit") == true, "\(h.metadata)")
    #expect(h.frames == c.frames)
    // With room, the BTF goes in before the files: files are cut, not the BTF.
    let big = try HintFormat.encode(c, regionSize: 32 << 10, generation: 2)
    let h2 = try HintFormat.decode(
      big.bytes + [UInt8](repeating: 0, count: (32 << 10) - big.bytes.count))
    #expect(h2.btf == c.btf)
  }

  /// Damage behind a valid checksum (what a hostile guest can write): each is one line.
  @Test func malformedSectionsAreRefused() throws {
    var c = sampleContent()
    c.btf = try Self.published(Self.sampleBlob())
    let good = try region(c)
    let (at, length) = try #require(Self.section(good, kind: HintSectionKind.btf.rawValue))
    func patched(_ offset: Int, _ value: UInt64, width: Int) -> String? {
      var b = good
      for i in 0..<width { b[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
      do {
        _ = try HintFormat.decode(HintDamage.reseal(b))
        return nil
      } catch { return error.description }
    }
    var entry = 0
    for i in 0..<5
    where (try? ByteReader(good).u32(at: HintFormat.headerSize + 32 * i))
      == HintSectionKind.btf.rawValue
    {
      entry = HintFormat.headerSize + 32 * i
    }
    #expect(entry > 0)
    let cases: [(String, Int, UInt64, Int)] = [
      ("unknown compression", at, 9, 4),
      ("reserved bytes", at + 4, 1, 4),
      ("bytes of BTF", at + 8, HintFormat.maxBTFBytes + 1, 8),
      ("bytes of BTF", at + 8, 0, 8),
      ("compressed bytes", at + 16, UInt64(length), 8),
      ("compressed bytes", at + 16, 0, 8),
      ("compressed bytes", at + 16, UInt64(length - 32 - 9), 8),
      ("btf section has", entry + 24, 2, 8),  // two items
      ("truncated", entry + 4, 2, 4),  // marked truncated
    ]
    for (want, offset, value, width) in cases {
      let e = patched(offset, value, width: width)
      #expect(e?.contains(want) == true, "\(want): \(e ?? "accepted")")
      #expect(e?.contains("\n") == false)
    }
    // Non-zero padding after the compressed bytes.
    let stored = Int(try ByteReader(good).u64(at: at + 16))
    if 32 + stored < length {
      let e = patched(at + 32 + stored, 0xFF, width: 1)
      #expect(e?.contains("padding") == true, "\(e ?? "accepted")")
    }
  }

  /// The host's side: the guest controls the compressed bytes, the size and the checksum.
  @Test func damagedBlobsAreOneLineErrors() throws {
    let p = try Self.published(Self.sampleBlob())
    func failure(_ q: PublishedBTF) -> String? {
      do {
        _ = try PublishedBTFBlob.parse(q)
        return nil
      } catch { return error.description }
    }
    var wrongSum = p
    wrongSum.checksum ^= 1
    #expect(failure(wrongSum)?.contains("checksum mismatch") == true)
    var larger = p
    larger.size += 1
    #expect(failure(larger)?.contains("bytes") == true)
    var smaller = p
    smaller.size -= 1
    #expect(failure(smaller) != nil)
    var huge = p
    huge.size = HintFormat.maxBTFBytes + 1
    #expect(failure(huge)?.contains("implausible") == true)
    for i in [0, 4, p.data.count / 2, p.data.count - 1] {
      var flipped = p
      flipped.data[i] ^= 0x55
      let e = failure(flipped)
      #expect(e != nil, "a flipped byte at \(i) was accepted")
      #expect(e?.contains("\n") == false)
    }
    var cut = p
    cut.data.removeLast(3)
    #expect(failure(cut) != nil)
    // A valid stream, size and checksum around bytes that are not BTF: the BTF reader refuses.
    let notBTF = try Self.published([0x9F, 0xEB, 1, 0] + [UInt8](repeating: 0, count: 60))
    #expect(try PublishedBTFBlob.decompress(notBTF).count == 64)
    #expect(failure(notBTF) != nil)
  }

  /// Random damage to a region with a BTF section, sealed or not: the reader and the host's
  /// decompression never crash, and whatever passes both is valid BTF or a one-line error.
  @Test func mutatedRegionsWithBTF() throws {
    var c = sampleContent()
    c.btf = try Self.published(Self.sampleBlob())
    let good = try region(c)
    var g = SplitMix64(seed: 14)
    var decoded = 0
    for i in 0..<3000 {
      var b = HintDamage.mutate(good, using: &g)
      if i % 2 == 0 { b = HintDamage.reseal(b) }
      guard let h = try? HintFormat.decode(b), let p = h.btf else { continue }
      decoded += 1
      do { _ = try PublishedBTFBlob.parse(p) } catch {
        #expect(!error.description.contains("\n"))
      }
    }
    #expect(decoded > 0)
  }
}
