// The kernel's own symbol table (kallsyms), read from the bytes of its image: a vmlinux without
// .symtab (the one inside a vmlinuz) or the image in guest memory. scripts/kallsyms.c writes,
// into .rodata:
//
//   kallsyms_num_syms     u32 (8-byte slot) N
//   kallsyms_names        N entries: a length (1 byte, or 2 when the first has bit 7 set:
//                         low 7 bits + next byte << 7), then that many token numbers
//   kallsyms_markers      u32 per 256 symbols: where that symbol's entry starts in names
//   kallsyms_token_table  256 NUL-terminated strings: token n expands to string n
//   kallsyms_token_index  256 u16: where string n starts in the token table
//   kallsyms_offsets      N s32, with kallsyms_relative_base (u64) the address of each symbol
//
// (6.1 puts offsets and relative_base before num_syms, 6.12 after token_index.) An expanded
// entry is the symbol's type letter followed by its name.
//
// Nothing names these tables in a stripped image, so they are found by their shape: the token
// table holds "0", "1", ... "9" as tokens 0x30...0x39 (digits are never merged into pairs
// there), which fixes its start; token_index must then list exactly the token starts; names
// must decode N entries that end before the markers, whose first two entries must agree with
// the decoding; and the symbol addresses must come out sorted, as kallsyms sorts them. Found
// tables that fail a check are not used: the search moves on or fails with the reason.

import KscopeOS

/// Addresses of the symbols asked for, from kallsyms.
public struct KallsymsResult: Sendable, Equatable {
  /// Name -> address as stored in the image (link-time in a file; in guest memory the
  /// relocated, running address for all but absolute per-CPU symbols).
  public var addresses: [String: UInt64]
  public var symbolCount: Int
  /// Image virtual addresses of the tables (for reports).
  public var namesAddress: UInt64
  public var tokenTableAddress: UInt64
  public var relativeBase: UInt64
}

public enum Kallsyms {
  static let digits: [UInt8] = Array("0\u{0}1\u{0}2\u{0}3\u{0}4\u{0}5\u{0}6\u{0}7\u{0}8\u{0}9\u{0}".utf8)

  /// Finds the tables in `image` (the bytes at virtual address `base` onward) and returns the
  /// addresses of `wanted`. Symbols kallsyms does not hold are simply absent from the result.
  public static func find(in image: UnsafeRawBufferPointer, base: UInt64, wanted: Set<String>)
    throws(BTFError) -> KallsymsResult
  {
    var reason = "no kallsyms token table (digit tokens) in the \(image.count)-byte image"
    var from = 0
    var hits = 0
    while hits < 64, let at = search(image, digits, from: from) {
      hits += 1
      from = at + 1
      do {
        return try decode(image, base: base, digitsAt: at, wanted: wanted)
      } catch {
        reason = error.description
      }
    }
    throw BTFError("kallsyms: \(reason)")
  }

  /// Where vmcoreinfo says the tables are (6.0+ exports them), as offsets into the image.
  public struct Tables: Sendable {
    public var names: Int, numSyms: Int, tokenTable: Int, tokenIndex: Int, offsets: Int, relativeBase: Int
    public init(names: Int, numSyms: Int, tokenTable: Int, tokenIndex: Int, offsets: Int, relativeBase: Int) {
      self.names = names
      self.numSyms = numSyms
      self.tokenTable = tokenTable
      self.tokenIndex = tokenIndex
      self.offsets = offsets
      self.relativeBase = relativeBase
    }
  }

  /// Reads the tables at known places, with the same checks as the search: the token index
  /// lists the token starts, the names decode within the image, the addresses come out sorted.
  public static func read(in img: UnsafeRawBufferPointer, base: UInt64, tables t: Tables, wanted: Set<String>)
    throws(BTFError) -> KallsymsResult
  {
    for (name, at, size) in [("names", t.names, 1), ("num_syms", t.numSyms, 4), ("token_table", t.tokenTable, 256),
                             ("token_index", t.tokenIndex, 512), ("offsets", t.offsets, 4), ("relative_base", t.relativeBase, 8)]
    where at < 0 || at > img.count - size {
      throw BTFError("kallsyms: vmcoreinfo puts kallsyms_\(name) outside the kernel image")
    }
    let tokens = try tokenTable(img, at: t.tokenTable)
    for n in 0..<256 where Int(u16(img, t.tokenIndex + 2 * n)) != tokens.starts[n] {
      throw BTFError("kallsyms: kallsyms_token_index does not match kallsyms_token_table")
    }
    let count = Int(u32(img, t.numSyms))
    guard count > 0, count < (1 << 22), t.offsets <= img.count - 4 * count,
      namesExtent(img, from: t.names, count: count, limit: img.count) != nil
    else { throw BTFError("kallsyms: \(count) names do not decode inside the kernel image") }
    let relBase = u64(img, t.relativeBase)
    guard let found = resolve(img, names: t.names, offsets: t.offsets, count: count, relBase: relBase, tokens: tokens.expansions, wanted: wanted)
    else { throw BTFError("kallsyms: the symbol addresses are not sorted") }
    return KallsymsResult(
      addresses: found, symbolCount: count, namesAddress: base &+ UInt64(t.names),
      tokenTableAddress: base &+ UInt64(t.tokenTable), relativeBase: relBase)
  }

  /// The 256 tokens from `at`: where each starts (relative to `at`) and what it expands to.
  static func tokenTable(_ img: UnsafeRawBufferPointer, at start: Int) throws(BTFError) -> (starts: [Int], expansions: [[UInt8]], end: Int) {
    var starts = [Int](repeating: 0, count: 256)
    var expansions: [[UInt8]] = []
    expansions.reserveCapacity(256)
    var at = start
    for n in 0..<256 {
      starts[n] = at - start
      let s = at
      while at < img.count, img[at] != 0 {
        at += 1
        guard at - s < 256 else { throw BTFError("kallsyms: token \(n) is implausibly long") }
      }
      guard at < img.count, at > s else { throw BTFError("kallsyms: token table is cut off or has an empty token") }
      expansions.append(Array(UnsafeRawBufferPointer(rebasing: img[s..<at])))
      at += 1
    }
    return (starts, expansions, at)
  }

  /// The first offset at or after `from` where `needle` occurs (memchr for its first byte).
  public static func search(_ hay: UnsafeRawBufferPointer, _ needle: [UInt8], from: Int) -> Int? {
    Memory.find(needle, in: hay, from: from)
  }

  @inline(__always)
  public static func u32(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
    UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self))
  }
  @inline(__always)
  static func u16(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt16 {
    UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))
  }
  @inline(__always)
  static func u64(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
    UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
  }

  static func decode(_ img: UnsafeRawBufferPointer, base: UInt64, digitsAt: Int, wanted: Set<String>)
    throws(BTFError) -> KallsymsResult
  {
    // 1. Token table: walk back 0x30 tokens from "0" to its start.
    var start = digitsAt
    for _ in 0..<0x30 {
      guard start >= 2, img[start - 1] == 0 else { throw BTFError("digit tokens not preceded by a token table") }
      var s = start - 2
      var steps = 0
      while s > 0, img[s - 1] != 0 {
        s -= 1
        steps += 1
        guard steps < 256 else { throw BTFError("token before the digits is implausibly long") }
      }
      start = s
    }
    let tokenTable = start
    let table = try Kallsyms.tokenTable(img, at: tokenTable)
    let tokenStarts = table.starts
    guard tokenStarts[0x30] == digitsAt - tokenTable else { throw BTFError("token table does not line up with its digits") }
    let tokenTableEnd = table.end

    // 2. Token index: right after the table (aligned), listing the token starts.
    var tokenIndex: Int? = nil
    var probe = (tokenTableEnd + 1) & ~1
    while tokenIndex == nil, probe <= tokenTableEnd + 16, probe + 512 <= img.count {
      var same = true
      for n in 0..<256 where Int(u16(img, probe + 2 * n)) != tokenStarts[n] {
        same = false
        break
      }
      if same { tokenIndex = probe }
      probe += 2
    }
    guard let tokenIndex else { throw BTFError("no token index after the token table") }

    let tokens = table.expansions

    // 3. num_syms + names: scan back from the token table for an 8-byte slot holding N whose
    //    N entries decode and end before the token table, followed by markers that agree.
    var numSymsAt: Int? = nil
    var count = 0
    var namesEnd = 0
    var p = (tokenTable & ~7)
    let lowest = max(8, tokenTable - (64 << 20))
    while p >= lowest {
      defer { p -= 8 }
      let n = Int(u32(img, p - 8))
      guard u32(img, p - 4) == 0, n >= 256, n < (1 << 22) else { continue }
      // Cheap first: the first entries must expand to "<nm type letter><printable name>".
      guard plausibleEntries(img, from: p, limit: tokenTable, tokens: tokens) else { continue }
      guard let end = namesExtent(img, from: p, count: n, limit: tokenTable) else { continue }
      guard markersAgree(img, namesStart: p, namesEnd: end, count: n) else { continue }
      numSymsAt = p - 8
      count = n
      namesEnd = end
      break
    }
    guard let numSymsAt else { throw BTFError("no kallsyms_num_syms/kallsyms_names before the token table") }
    let names = numSymsAt + 8
    _ = namesEnd

    // 4. Offsets and relative base: after the token index (6.12) or before num_syms (6.1).
    var candidates: [(offsets: Int, base: Int)] = []
    let after = (tokenIndex + 512 + 7) & ~7
    candidates.append((after, (after + 4 * count + 7) & ~7))
    if (tokenIndex + 512) % 8 != 0 {
      let after4 = tokenIndex + 512
      candidates.append((after4, (after4 + 4 * count + 7) & ~7))
    }
    let rb = numSymsAt - 8
    candidates.append((rb - 4 * count, rb))
    candidates.append((rb - 4 * count - 4, rb))
    for c in candidates where c.offsets >= 0 && c.base >= 0 && c.base + 8 <= img.count && c.offsets + 4 * count <= c.base {
      let relBase = u64(img, c.base)
      guard relBase >= 0xffff_ffff_8000_0000 else { continue }
      guard let result = resolve(img, names: names, offsets: c.offsets, count: count, relBase: relBase, tokens: tokens, wanted: wanted) else { continue }
      return KallsymsResult(
        addresses: result, symbolCount: count, namesAddress: base &+ UInt64(names),
        tokenTableAddress: base &+ UInt64(tokenTable), relativeBase: relBase)
    }
    throw BTFError("no kallsyms_offsets/kallsyms_relative_base giving sorted addresses")
  }

  /// Whether the first 8 entries at `from` expand to symbol-looking text: a letter (nm's
  /// type) and then printable ASCII. Rejects most wrong starts without walking all names.
  static func plausibleEntries(_ img: UnsafeRawBufferPointer, from: Int, limit: Int, tokens: [[UInt8]]) -> Bool {
    var at = from
    for _ in 0..<8 {
      guard at < limit else { return false }
      var len = Int(img[at])
      at += 1
      if len & 0x80 != 0 {
        guard at < limit else { return false }
        len = (len & 0x7F) | Int(img[at]) << 7
        at += 1
      }
      guard len > 0, len < 1024, at + len <= limit else { return false }
      for k in 0..<len {
        let token = tokens[Int(img[at + k])]
        for (j, c) in token.enumerated() {
          let isLetter = (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
          if k == 0 && j == 0 ? !isLetter : (c < 0x21 || c > 0x7E) { return false }
        }
      }
      at += len
    }
    return true
  }

  /// Where the names of `count` entries starting at `from` end, if they all fit before
  /// `limit` and each is plausible (a length > 0).
  static func namesExtent(_ img: UnsafeRawBufferPointer, from: Int, count: Int, limit: Int) -> Int? {
    var at = from
    // Quick rejection on the first entries before the full walk.
    for i in 0..<count {
      guard at < limit else { return nil }
      var len = Int(img[at])
      at += 1
      if len & 0x80 != 0 {
        guard at < limit else { return nil }
        len = (len & 0x7F) | Int(img[at]) << 7
        at += 1
      }
      guard len > 0, len < 1024 else { return nil }
      at += len
      if i < 16, at > limit { return nil }
    }
    return at <= limit ? at : nil
  }

  /// markers[0] == 0 and markers[1] == where entry 256 starts, just after the names.
  static func markersAgree(_ img: UnsafeRawBufferPointer, namesStart: Int, namesEnd: Int, count: Int) -> Bool {
    // Offset of entry 256.
    var at = namesStart
    for _ in 0..<256 {
      var len = Int(img[at])
      at += 1
      if len & 0x80 != 0 {
        len = (len & 0x7F) | Int(img[at]) << 7
        at += 1
      }
      at += len
    }
    let second = UInt32(at - namesStart)
    var m = (namesEnd + 3) & ~3
    while m <= namesEnd + 8, m + 8 <= img.count {
      if u32(img, m) == 0, u32(img, m + 4) == second { return true }
      m += 4
    }
    return false
  }

  /// Decodes every entry: the wanted names' addresses, or nil when the addresses are not
  /// sorted (these are not the offsets, or not this base).
  static func resolve(
    _ img: UnsafeRawBufferPointer, names: Int, offsets: Int, count: Int, relBase: UInt64,
    tokens: [[UInt8]], wanted: Set<String>
  ) -> [String: UInt64]? {
    var absolutePerCPU = false
    for i in 0..<count where Int32(bitPattern: u32(img, offsets + 4 * i)) < 0 {
      absolutePerCPU = true
      break
    }
    func address(_ i: Int) -> UInt64 {
      let raw = Int32(bitPattern: u32(img, offsets + 4 * i))
      if !absolutePerCPU { return relBase &+ UInt64(UInt32(bitPattern: raw)) }
      return raw >= 0 ? UInt64(raw) : relBase &- 1 &- UInt64(bitPattern: Int64(raw))
    }
    var previous: UInt64 = 0
    for i in 0..<count {
      let a = address(i)
      guard a >= previous else { return nil }
      previous = a
    }
    // Wanted names by expanded length (+1 for the type letter): most entries are skipped after
    // summing their tokens' lengths; the rest are compared token by token against each wanted
    // name of that length, stopping at the first differing byte. Nothing is copied or hashed
    // per entry (this loop runs over every symbol: 154,686 on 6.12).
    let wantedNames = Array(wanted.filter { $0.utf8.count < 1024 })
    let nameBytes = wantedNames.map { Array($0.utf8) }
    var byLength = [[Int]](repeating: [], count: 1025)
    for (n, b) in nameBytes.enumerated() { byLength[b.count + 1].append(n) }
    // The tokens flattened: token t is flat[start[t] ..< start[t] + length[t]].
    var flat: [UInt8] = []
    var tokenStart = [Int](repeating: 0, count: 256)
    var tokenLength = [Int](repeating: 0, count: 256)
    for (t, bytes) in tokens.prefix(256).enumerated() {
      tokenStart[t] = flat.count
      tokenLength[t] = bytes.count
      flat += bytes
    }
    var addresses = [UInt64?](repeating: nil, count: wantedNames.count)
    var left = wantedNames.count
    flat.withUnsafeBufferPointer { flat in
      tokenStart.withUnsafeBufferPointer { tokenStart in
        tokenLength.withUnsafeBufferPointer { tokenLength in
          /// Whether entry tokens img[at ..< at + len] expand to the type letter and `want`.
          func matches(_ at: Int, _ len: Int, _ want: [UInt8]) -> Bool {
            var p = -1  // -1: the type letter, not compared
            for k in 0..<len {
              let t = Int(img[at + k])
              let s = tokenStart[t]
              for j in 0..<tokenLength[t] {
                if p >= 0, want[p] != flat[s + j] { return false }
                p += 1
              }
            }
            return true
          }
          var at = names
          for i in 0..<count {
            if left == 0 { break }
            var len = Int(img[at])
            at += 1
            if len & 0x80 != 0 {
              len = (len & 0x7F) | Int(img[at]) << 7
              at += 1
            }
            var expanded = 0
            for k in 0..<len { expanded += tokenLength[Int(img[at + k])] }
            if expanded <= 1024 {
              for n in byLength[expanded] where addresses[n] == nil && matches(at, len, nameBytes[n]) {
                addresses[n] = address(i)
                left -= 1
              }
            }
            at += len
          }
        }
      }
    }
    var found: [String: UInt64] = [:]
    for (n, a) in addresses.enumerated() { if let a { found[wantedNames[n]] = a } }
    return found
  }
}
