import KscopeCore
import KscopeLayout
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Writes small BTF blobs by hand (little-endian, version 1), as pahole would lay them out.
struct BTFBuilder {
  var strings: [UInt8] = [0]
  var types: [UInt8] = []
  var count = 0

  mutating func str(_ s: String) -> UInt32 {
    if s.isEmpty { return 0 }
    let at = UInt32(strings.count)
    strings += Array(s.utf8) + [0]
    return at
  }
  mutating func word(_ v: UInt32) { types += withUnsafeBytes(of: v.littleEndian) { Array($0) } }
  mutating func record(_ name: String, kind: UInt32, vlen: Int = 0, flag: Bool = false, _ sizeOrType: UInt32) -> UInt32 {
    let n = str(name)
    word(n)
    word(UInt32(vlen) | kind << 24 | (flag ? 1 << 31 : 0))
    word(sizeOrType)
    count += 1
    return UInt32(count)
  }
  /// INT: encoding 1 signed, 2 char, 4 bool.
  mutating func int(_ name: String, size: UInt32, encoding: UInt32 = 0, bits: UInt32? = nil, offset: UInt32 = 0) -> UInt32 {
    let id = record(name, kind: 1, size)
    word(encoding << 24 | offset << 16 | (bits ?? size * 8))
    return id
  }
  mutating func ptr(_ to: UInt32) -> UInt32 { record("", kind: 2, to) }
  mutating func typedef(_ name: String, _ to: UInt32) -> UInt32 { record(name, kind: 8, to) }
  mutating func const(_ to: UInt32) -> UInt32 { record("", kind: 10, to) }
  mutating func array(_ of: UInt32, index: UInt32, count n: UInt32) -> UInt32 {
    let id = record("", kind: 3, 0)
    word(of)
    word(index)
    word(n)
    return id
  }
  /// Members as (name, type, bit offset, bitfield size); kind_flag when any has a size.
  mutating func structure(_ name: String, size: UInt32, union: Bool = false, _ members: [(String, UInt32, UInt32, UInt32)]) -> UInt32 {
    let flag = members.contains { $0.3 > 0 }
    let names = members.map { str($0.0) }
    let id = record(name, kind: union ? 5 : 4, vlen: members.count, flag: flag, size)
    for (m, n) in zip(members, names) {
      word(n)
      word(m.1)
      word(flag ? m.3 << 24 | m.2 : m.2)
    }
    return id
  }
  mutating func enumeration(_ name: String, size: UInt32 = 4, signed: Bool = false, _ values: [(String, Int32)]) -> UInt32 {
    let names = values.map { str($0.0) }
    let id = record(name, kind: 6, vlen: values.count, flag: signed, size)
    for (v, n) in zip(values, names) {
      word(n)
      word(UInt32(bitPattern: v.1))
    }
    return id
  }
  mutating func enum64(_ name: String, signed: Bool = false, _ values: [(String, UInt64)]) -> UInt32 {
    let names = values.map { str($0.0) }
    let id = record(name, kind: 19, vlen: values.count, flag: signed, 8)
    for (v, n) in zip(values, names) {
      word(n)
      word(UInt32(truncatingIfNeeded: v.1))
      word(UInt32(truncatingIfNeeded: v.1 >> 32))
    }
    return id
  }
  mutating func funcProto(_ ret: UInt32, params: [UInt32]) -> UInt32 {
    let id = record("", kind: 13, vlen: params.count, ret)
    for p in params {
      word(0)
      word(p)
    }
    return id
  }
  mutating func fwd(_ name: String, union: Bool = false) -> UInt32 { record(name, kind: 7, flag: union, 0) }

  var bytes: [UInt8] {
    var h: [UInt8] = [0x9F, 0xEB, 1, 0]
    for v in [UInt32(24), 0, UInt32(types.count), UInt32(types.count), UInt32(strings.count)] {
      h += withUnsafeBytes(of: v.littleEndian) { Array($0) }
    }
    return h + types + strings
  }
}

/// A request for the sample types only (no symbols: BTF carries none).
let sampleRequest = LayoutRequest(
  types: ["page", "atomic_holder", "list_head"], enums: ["pageflags", "big"],
  requiredMembers: ["page": [["flags"], ["mapping"], ["_refcount", "_count"], ["order"]]], symbols: [],
  optionalSymbols: [])

/// A struct page-like sample using each kind the layout needs.
func sampleBTF() -> BTFBuilder {
  var b = BTFBuilder()
  let ulong = b.int("long unsigned int", size: 8)
  let uint = b.int("unsigned int", size: 4)
  let int = b.int("int", size: 4, encoding: 1)
  let char = b.int("char", size: 1, encoding: 1)
  let atomicStruct = b.structure("", size: 4, [("counter", int, 0, 0)])
  let atomic = b.typedef("atomic_t", atomicStruct)
  let fwdMapping = b.fwd("address_space")
  let mappingPtr = b.ptr(fwdMapping)
  let lru = b.structure("list_head", size: 16, [("next", 0, 0, 0), ("prev", 0, 64, 0)])
  // An anonymous union of (lru, { mapping; index }) at offset 8.
  let inner = b.structure("", size: 16, [("mapping", mappingPtr, 0, 0), ("index", ulong, 64, 0)])
  let anonUnion = b.structure("", size: 16, union: true, [("lru", lru, 0, 0), ("", inner, 0, 0)])
  let name = b.array(char, index: uint, count: 16)
  let grid = b.array(b.array(ulong, index: uint, count: 2), index: uint, count: 3)
  let proto = b.funcProto(int, params: [mappingPtr])
  let fnPtr = b.ptr(proto)
  let constUint = b.const(uint)
  _ = b.structure(
    "page", size: 112,
    [
      ("flags", ulong, 0, 0), ("", anonUnion, 64, 0), ("_refcount", atomic, 192, 0),
      ("order", constUint, 224, 4), ("dirty", uint, 228, 1), ("name", name, 256, 0),
      ("grid", grid, 384, 0), ("callback", fnPtr, 768, 0), ("anon_field", atomicStruct, 832, 0),
    ])
  _ = b.typedef("atomic_holder", b.structure("", size: 4, [("value", atomic, 0, 0)]))
  _ = b.enumeration("pageflags", [("PG_locked", 0), ("PG_slab", 9), ("PG_high", -1)])
  _ = b.enum64("big", [("HUGE", 0xffff_0000_0000_0000)])
  // No banner, so no release rule: the page_type encoding must come from enum pagetype.
  _ = b.enumeration("pagetype", [("PGTY_buddy", 0xf0), ("PGTY_slab", 0xf5)])
  return b
}

@Suite struct BTFTests {
  @Test func readsEveryRecordedKind() throws {
    let btf = try BTF(sampleBTF().bytes)
    let layout = try KernelLayout.fromBTF(btf, symbols: [:], request: sampleRequest, sourceName: "sample")
    #expect(layout.sources == [LayoutSource(kind: "btf", name: "sample")])
    let page = try layout.userType("page")
    #expect(page.size == 112)
    #expect(try layout.offset(of: "page", member: "flags") == 0)
    // Flattened: lru, mapping and index from the anonymous union at 8.
    #expect(try layout.offset(of: "page", member: "lru") == 8)
    #expect(try layout.offset(of: "page", member: "lru.prev") == 16)
    #expect(try layout.offset(of: "page", member: "mapping") == 8)
    #expect(try layout.offset(of: "page", member: "index") == 16)
    #expect(page.member(named: "mapping")?.type == .pointer(.structure("address_space")))
    #expect(page.member(named: "_refcount")?.type == .structure("atomic_t"))
    #expect(layout.userTypes["atomic_t"]?.member(named: "counter")?.type == .base("int"))
    // Bitfields: 4 bits at bit 224 = unit at byte 28, position 0; 1 bit at 228 -> position 4.
    #expect(try layout.bitfield(of: "page", member: ["order"]) == (28, 0, 4))
    #expect(try layout.bitfield(of: "page", member: ["dirty"]) == (28, 4, 1))
    #expect(page.member(named: "name")?.type == .array(count: 16, of: .base("char")))
    #expect(page.member(named: "grid")?.type == .array(count: 3, of: .array(count: 2, of: .base("long unsigned int"))))
    #expect(page.member(named: "callback")?.type == .pointer(.function))
    #expect(page.member(named: "anon_field")?.type == .structure("unnamed_page_anon_field"))
    #expect(layout.baseTypes["char"] == BaseType(size: 1, signed: true, kind: .char))
    #expect(layout.baseTypes["pointer"] == BaseType(size: 8, signed: false, kind: .int))
    // A typedef of an anonymous struct takes the typedef's name.
    #expect(try layout.userType("atomic_holder").member(named: "value")?.type == .structure("atomic_t"))
    // Enums: unsigned values stay positive, signed ones keep their sign, 64-bit values survive.
    #expect(try layout.enumValue("pageflags", "PG_slab") == 9)
    #expect(try layout.enumValue("pageflags", "PG_high") == 0xffff_ffff)
    #expect(layout.enums["pageflags"]?.base == "unsigned int")
    #expect(try layout.enumValue("big", "HUGE") == Int64(bitPattern: 0xffff_0000_0000_0000))
    #expect(layout.enums["big"]?.base == "long unsigned int")
    #expect(try layout.pageTypeEncoding().has(.slab, pageType: 0xf500_0000))
  }

  @Test func signedEnumsAndOldStyleBitfields() throws {
    var b = BTFBuilder()
    let uint = b.int("unsigned int", size: 4)
    // Without kind_flag: a 3-bit INT at member bit 40.
    let three = b.int("unsigned int", size: 4, bits: 3)
    _ = b.structure("page", size: 8, [("flags", uint, 0, 0), ("mapping", uint, 32, 0)])
    _ = b.structure("old", size: 8, [("x", three, 40, 0)])
    _ = b.enumeration("pageflags", signed: true, [("NEG", -2)])
    _ = b.enumeration("big", size: 1, [("ONE", 1)])
    let btf = try BTF(b.bytes)
    var collector = BTFTypeCollector(btf: btf)
    try collector.collect(["old", "pageflags", "big", "missing"])
    #expect(collector.userTypes["old"]?.member(named: "x")?.type == .bitfield(position: 8, length: 3, storage: .base("unsigned int")))
    #expect(collector.userTypes["old"]?.member(named: "x")?.offset == 4)
    #expect(collector.enums["pageflags"]?.constants["NEG"] == -2)
    #expect(collector.enums["pageflags"]?.base == "int")
    #expect(collector.enums["big"]?.base == "unsigned char")
    #expect(collector.notFound == ["missing"])
  }

  @Test func aMissingMemberIsAnErrorNotAPartialLayout() throws {
    var b = BTFBuilder()
    let ulong = b.int("long unsigned int", size: 8)
    _ = b.structure("page", size: 8, [("flags", ulong, 0, 0)])
    let btf = try BTF(b.bytes)
    #expect(throws: BTFError.self) {
      try KernelLayout.fromBTF(btf, symbols: [:], request: sampleRequest, sourceName: "x")
    }
    do {
      _ = try KernelLayout.fromBTF(btf, symbols: [:], request: sampleRequest, sourceName: "x")
    } catch {
      #expect(error.description.contains("member page.mapping"))
      #expect(!error.description.contains("\n"))
    }
  }

  func failure(_ bytes: [UInt8], request: LayoutRequest = sampleRequest) -> String? {
    do {
      let btf = try BTF(bytes)
      _ = try KernelLayout.fromBTF(btf, symbols: [:], request: request, sourceName: "x")
      return nil
    } catch {
      return error.description
    }
  }

  @Test func damagedHeadersAreOneLineErrors() {
    let good = sampleBTF().bytes
    #expect(failure(good) == nil)
    func patched(_ at: Int, _ v: UInt32) -> [UInt8] {
      var b = good
      for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
      return b
    }
    let cases: [([UInt8], String)] = [
      (Array(good.prefix(10)), "shorter than a header"),
      ([0x9E] + good.dropFirst(), "bad magic"),
      (Array(good.prefix(2)) + [2] + good.dropFirst(3), "version 2"),
      (patched(4, 12), "header length"),
      (patched(12, 1 << 20), "type section"),
      (patched(20, 1 << 20), "string section"),
      (Array(good.dropLast(5)), "string section"),  // truncated
      (patched(12, UInt32(sampleBTF().types.count - 8)), "runs past the end of the type section"),
      (patched(16, 4), "overlap"),
    ]
    for (bytes, want) in cases {
      let got = failure(bytes)
      #expect(got?.contains(want) == true, "\(want): \(got ?? "accepted")")
      #expect(got?.contains("\n") != true)
    }
  }

  @Test func typeLoopsAndBadIdsAreErrors() {
    // typedef page -> typedef x -> typedef page: strip never ends.
    var loop = BTFBuilder()
    _ = loop.typedef("page", 2)
    _ = loop.typedef("x", 1)
    #expect(failure(loop.bytes)?.contains("loop") == true)

    // A pointer to itself inside a member: describe is bounded.
    var ptrLoop = BTFBuilder()
    let ulong = ptrLoop.int("long unsigned int", size: 8)
    _ = ptrLoop.structure("page", size: 16, [("flags", ulong, 0, 0), ("mapping", 3, 64, 0)])
    _ = ptrLoop.ptr(3)
    #expect(failure(ptrLoop.bytes)?.contains("too deep") == true)

    // An anonymous struct that contains itself as an anonymous member.
    var nest = BTFBuilder()
    _ = nest.structure("page", size: 8, [("", 2, 0, 0)])
    _ = nest.structure("", size: 8, [("", 2, 0, 0)])
    #expect(failure(nest.bytes)?.contains("nest too deeply") == true)

    // An anonymous struct whose member points to itself: each level would be a new
    // `unnamed_...` type without the bound.
    var selfRef = BTFBuilder()
    _ = selfRef.structure("page", size: 8, [("link", 3, 0, 0)])
    _ = selfRef.structure("", size: 8, [("next", 3, 0, 0)])
    _ = selfRef.ptr(2)
    #expect(failure(selfRef.bytes)?.contains("nest too deeply") == true)

    // A member type id past the last type.
    var range = BTFBuilder()
    _ = range.structure("page", size: 8, [("flags", 99, 0, 0)])
    #expect(failure(range.bytes)?.contains("out of range") == true)

    // A name offset past the string section.
    var badName = BTFBuilder()
    _ = badName.int("int", size: 4)
    _ = badName.structure("page", size: 8, [("flags", 1, 0, 0)])
    var bytes = badName.bytes
    bytes[24 + 16 + 12] = 0xFF  // the member's name offset
    #expect(failure(bytes)?.contains("string offset") == true)

    // An unknown kind.
    var unknown = BTFBuilder()
    _ = unknown.record("page", kind: 25, 0)
    #expect(failure(unknown.bytes)?.contains("unknown kind 25") == true)
  }

  /// Seeded mutations of a valid blob (KSCOPE_FUZZ_ITERATIONS, KSCOPE_FUZZ_SEED as for the
  /// hint reader): every outcome is an error or a complete layout, fast.
  @Test func fuzzedBlobsNeverCrashOrGivePartialLayouts() {
    let iterations = getenv("KSCOPE_FUZZ_ITERATIONS").flatMap { Int(String(cString: $0)) } ?? 4000
    let seed = getenv("KSCOPE_FUZZ_SEED").flatMap { UInt64(String(cString: $0)) } ?? 0x6274_6600
    var g = SplitMix64(seed: seed)
    let base = sampleBTF().bytes
    var accepted = 0
    let clock = ContinuousClock()
    var slowest = Duration.zero
    for _ in 0..<iterations {
      var m = HintDamage.mutate(base, using: &g)
      // Keep the magic most of the time, so mutations reach past the header checks.
      if g.below(4) != 0, m.count >= 3 { m[0] = 0x9F; m[1] = 0xEB; m[2] = 1 }
      let start = clock.now
      if let btf = try? BTF(m),
        let layout = try? KernelLayout.fromBTF(btf, symbols: [:], request: sampleRequest, sourceName: "f")
      {
        accepted += 1
        #expect(sampleRequest.missing(in: layout).isEmpty)
      }
      slowest = max(slowest, clock.now - start)
    }
    #expect(slowest < .seconds(1))
    #expect(accepted < iterations)
  }
}
