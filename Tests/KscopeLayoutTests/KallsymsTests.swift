import KscopeCore
import KscopeLayout
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Kallsyms tables written as scripts/kallsyms.c lays them out, in the 6.12 order (num_syms,
/// names, markers, token table, token index, offsets, relative base) or the 6.1 order
/// (offsets, relative base first).
struct KallsymsBuilder {
  var symbols: [(type: Character, name: String, address: UInt64)]
  var oldOrder = false
  var relativeBase: UInt64 = 0xffff_ffff_8100_0000
  /// Bytes of unrelated data before the tables.
  var prefix = 4096

  static func align(_ b: inout [UInt8], _ n: Int) { while b.count % n != 0 { b.append(0) } }
  static func put32(_ b: inout [UInt8], _ v: UInt32) { b += withUnsafeBytes(of: v.littleEndian) { Array($0) } }
  static func put64(_ b: inout [UInt8], _ v: UInt64) { b += withUnsafeBytes(of: v.littleEndian) { Array($0) } }

  /// Token n is the character n when printable; "ab"-like pairs elsewhere; token 0x80 is "s_"
  /// (a compressed pair), used in names.
  static func token(_ n: Int) -> [UInt8] {
    if n == 0x80 { return Array("s_".utf8) }
    if n >= 0x21 && n < 0x7F { return [UInt8(n)] }
    return [UInt8(0x61 + n % 26), UInt8(0x61 + n / 26 % 26)]
  }

  func encode(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var bytes = Array(s.utf8)[...]
    while let c = bytes.first {
      if bytes.starts(with: Array("s_".utf8)) {
        out.append(0x80)
        bytes = bytes.dropFirst(2)
      } else {
        out.append(c)
        bytes = bytes.dropFirst()
      }
    }
    return out
  }

  var bytes: [UInt8] {
    var b = [UInt8](repeating: 0xAA, count: prefix)
    func offsetsAndBase(_ b: inout [UInt8]) {
      KallsymsBuilder.align(&b, 8)
      for s in symbols {
        // Absolute per-CPU style: kernel symbols relative to base - 1, negated.
        KallsymsBuilder.put32(&b, UInt32(bitPattern: Int32(-(Int64(s.address - relativeBase) + 1))))
      }
      KallsymsBuilder.align(&b, 8)
      KallsymsBuilder.put64(&b, relativeBase)
    }
    if oldOrder { offsetsAndBase(&b) }
    KallsymsBuilder.align(&b, 8)
    KallsymsBuilder.put32(&b, UInt32(symbols.count))
    KallsymsBuilder.align(&b, 8)
    let names = b.count
    var markers: [UInt32] = []
    for (i, s) in symbols.enumerated() {
      if i % 256 == 0 { markers.append(UInt32(b.count - names)) }
      let entry = encode(String(s.type) + s.name)
      b.append(UInt8(entry.count))
      b += entry
    }
    KallsymsBuilder.align(&b, 8)
    for m in markers { KallsymsBuilder.put32(&b, m) }
    KallsymsBuilder.align(&b, 8)
    var starts: [UInt16] = []
    let table = b.count
    for n in 0..<256 {
      starts.append(UInt16(b.count - table))
      b += KallsymsBuilder.token(n) + [0]
    }
    KallsymsBuilder.align(&b, 8)
    for s in starts { b += withUnsafeBytes(of: s.littleEndian) { Array($0) } }
    if !oldOrder { offsetsAndBase(&b) }
    b += [UInt8](repeating: 0x55, count: 64)
    return b
  }
}

@Suite struct KallsymsTests {
  static func sample(_ oldOrder: Bool) -> KallsymsBuilder {
    var symbols: [(Character, String, UInt64)] = []
    for i in 0..<700 { symbols.append(("t", "func_\(i)", 0xffff_ffff_8100_0000 + UInt64(i) * 64)) }
    symbols[3] = ("T", "_stext", 0xffff_ffff_8100_0000 + 3 * 64)
    symbols[650] = ("D", "init_task", 0xffff_ffff_8100_0000 + 650 * 64)
    symbols[651] = ("D", "vmemmap_base", 0xffff_ffff_8100_0000 + 651 * 64)
    return KallsymsBuilder(symbols: symbols.map { ($0.0, $0.1, $0.2) }, oldOrder: oldOrder)
  }

  @Test(arguments: [false, true]) func findsTablesByShape(oldOrder: Bool) throws {
    let bytes = Self.sample(oldOrder).bytes
    let base: UInt64 = 0xffff_ffff_8200_0000
    let result = try bytes.withUnsafeBytes {
      try Kallsyms.find(in: $0, base: base, wanted: ["_stext", "init_task", "vmemmap_base", "func_699", "nothere"])
    }
    #expect(result.symbolCount == 700)
    #expect(result.addresses["_stext"] == 0xffff_ffff_8100_00C0)
    #expect(result.addresses["init_task"] == UInt64(0xffff_ffff_8100_0000) + 650 * 64)
    #expect(result.addresses["vmemmap_base"] == UInt64(0xffff_ffff_8100_0000) + 651 * 64)
    #expect(result.addresses["func_699"] == UInt64(0xffff_ffff_8100_0000) + 699 * 64)
    #expect(result.addresses["nothere"] == nil)
    #expect(result.relativeBase == 0xffff_ffff_8100_0000)
  }

  @Test func unsortedAddressesOrDamagedTablesAreRefused() {
    var unsorted = Self.sample(false)
    unsorted.symbols.swapAt(10, 500)
    #expect(throws: BTFError.self) {
      try unsorted.bytes.withUnsafeBytes { try Kallsyms.find(in: $0, base: 0, wanted: ["_stext"]) }
    }
    // A wrong symbol count: the names no longer end where the markers say.
    var bytes = Self.sample(false).bytes
    let n = bytes.withUnsafeBytes { raw in
      (0..<(raw.count - 4)).first { Kallsyms.u32(raw, $0) == 700 && $0 % 8 == 0 }!
    }
    bytes[n] = 0xBD  // 700 (0x2BC) -> 701
    do {
      _ = try bytes.withUnsafeBytes { try Kallsyms.find(in: $0, base: 0, wanted: ["_stext"]) }
      Issue.record("a damaged symbol count was accepted")
    } catch {
      #expect("\(error)".hasPrefix("kallsyms:"))
    }
    // No token table at all.
    #expect(throws: BTFError.self) {
      try [UInt8](repeating: 0x30, count: 10000).withUnsafeBytes { try Kallsyms.find(in: $0, base: 0, wanted: []) }
    }
  }

  /// Seeded mutations of kallsyms tables, and of small ELF and bzImage headers: every outcome
  /// is a result or an error, never a crash or a hang (KSCOPE_FUZZ_ITERATIONS, KSCOPE_FUZZ_SEED).
  @Test func fuzzedImagesNeverCrash() {
    let iterations = getenv("KSCOPE_FUZZ_ITERATIONS").flatMap { Int(String(cString: $0)) } ?? 1000
    let seed = getenv("KSCOPE_FUZZ_SEED").flatMap { UInt64(String(cString: $0)) } ?? 0x6b61_6c6c
    var g = SplitMix64(seed: seed)
    let tables = [Self.sample(false).bytes, Self.sample(true).bytes]
    var elf = [UInt8](repeating: 0, count: 512)
    elf[0...5] = [0x7F, 0x45, 0x4C, 0x46, 2, 1]
    elf[0x28] = 64  // shoff
    elf[0x3A] = 64  // shentsize
    elf[0x3C] = 2  // shnum
    elf[0x3E] = 1  // shstrndx
    var bz = [UInt8](repeating: 0, count: 4096)
    bz[0x202...0x207] = [0x48, 0x64, 0x72, 0x53, 0x0F, 0x02]
    bz[0x1F1] = 1
    bz[0x24C] = 64  // payload length
    bz[1024...1027] = [0x28, 0xB5, 0x2F, 0xFD]
    let clock = ContinuousClock()
    var slowest = Duration.zero
    var found = 0
    for _ in 0..<iterations {
      let start = clock.now
      let m = HintDamage.mutate(tables[g.below(2)], using: &g)
      if (try? m.withUnsafeBytes { try Kallsyms.find(in: $0, base: 0xffff_ffff_8200_0000, wanted: ["_stext"]) }) != nil {
        found += 1
      }
      _ = try? HintDamage.mutate(elf, using: &g).withUnsafeBytes { try ElfSections($0) }
      _ = try? HintDamage.mutate(bz, using: &g).withUnsafeBytes { try BzImagePayload.parse($0) }
      slowest = max(slowest, clock.now - start)
    }
    #expect(slowest < .seconds(1))
    #expect(found > 0)  // mutations outside the tables leave them readable
  }
}
