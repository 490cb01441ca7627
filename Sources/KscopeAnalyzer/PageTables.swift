import KscopeSnapshot
/// x86-64 page tables, 4 or 5 levels, with 1 GiB and 2 MiB pages. Pure: reads go through
/// `PhysicalMemory`, which answers nil outside RAM.
public struct PageTableWalker: Sendable {
  public struct Entry: Sendable, Hashable {
    public var raw: UInt64
    public var present: Bool { raw & 1 != 0 }
    public var writable: Bool { raw & 2 != 0 }
    public var user: Bool { raw & 4 != 0 }
    public var accessed: Bool { raw & 0x20 != 0 }
    public var dirty: Bool { raw & 0x40 != 0 }
    public var large: Bool { raw & 0x80 != 0 }
    public var noExecute: Bool { raw & (1 << 63) != 0 }
  }

  /// A leaf mapping: `size` bytes at virtual `va` backed by physical `pa`.
  public struct Leaf: Sendable {
    public var va: UInt64
    public var pa: UInt64
    public var size: UInt64
    /// Effective permissions: user only if every level allows it, executable only if no level
    /// forbids it.
    public var user: Bool
    public var executable: Bool
    public var writable: Bool
    public var dirty: Bool
    public var accessed: Bool
  }

  public struct Stats: Sendable {
    /// Table pointers outside RAM, tables visited twice, budget exhausted.
    public var anomalies = 0
    public var tablesVisited = 0
    public var leaves = 0
  }

  public let memory: any PhysicalMemory
  public let levels: Int  // 4 or 5
  static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

  public init(memory: any PhysicalMemory, fiveLevel: Bool) {
    self.memory = memory
    levels = fiveLevel ? 5 : 4
  }

  /// Bits of VA resolved below each level: level 1 (PT) 12, 2 (PD) 21, 3 (PDPT) 30, 4 39, 5 48.
  @inline(__always) static func shift(_ level: Int) -> UInt64 { UInt64(12 + 9 * (level - 1)) }

  /// Translates one virtual address through the tables rooted at physical `root`.
  public func translate(root: UInt64, va: UInt64) -> (pa: UInt64, size: UInt64, leaf: Entry)? {
    var table = root
    var level = levels
    while level >= 1 {
      let index = (va >> PageTableWalker.shift(level)) & 511
      guard let raw = memory.u64(at: table + index * 8) else { return nil }
      let e = Entry(raw: raw)
      guard e.present else { return nil }
      if level == 1 || ((level == 2 || level == 3) && e.large) {
        let size: UInt64 = 1 << PageTableWalker.shift(level)
        let base = raw & PageTableWalker.addressMask & ~(size - 1)
        return (base | (va & (size - 1)), size, e)
      }
      table = raw & PageTableWalker.addressMask
      level -= 1
    }
    return nil
  }

  /// Visits every present leaf mapping in the lower (user) half, depth first. Bounded: each
  /// table is visited at most once per walk, table pointers outside RAM are skipped, and at
  /// most `maxLeaves` leaves are reported and `maxTables` tables read.
  public func forEachUserLeaf(
    root: UInt64, maxLeaves: Int = 1 << 22, maxTables: Int = 1 << 20, _ body: (Leaf) -> Void
  ) -> Stats {
    var stats = Stats()
    var seen = Set<UInt64>()
    func walk(_ table: UInt64, _ level: Int, _ vaBase: UInt64, _ user: Bool, _ exec: Bool, _ write: Bool) {
      guard seen.insert(table | UInt64(level)).inserted, stats.tablesVisited < maxTables, stats.leaves < maxLeaves else {
        stats.anomalies += 1
        return
      }
      guard let entries = memory.withBytes(at: table, count: 4096, { raw in
        (0..<512).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
      }) else {
        stats.anomalies += 1
        return
      }
      stats.tablesVisited += 1
      // The top level's upper half is the kernel's: only the lower 256 entries are user space.
      let count = level == levels ? 256 : 512
      for i in 0..<count {
        let e = Entry(raw: entries[i])
        guard e.present else { continue }
        let va = vaBase | (UInt64(i) << PageTableWalker.shift(level))
        let u = user && e.user
        let x = exec && !e.noExecute
        let w = write && e.writable
        if level == 1 || ((level == 2 || level == 3) && e.large) {
          guard stats.leaves < maxLeaves else {
            stats.anomalies += 1
            return
          }
          let size: UInt64 = 1 << PageTableWalker.shift(level)
          stats.leaves += 1
          body(Leaf(va: va, pa: entries[i] & PageTableWalker.addressMask & ~(size - 1), size: size,
                    user: u, executable: x, writable: w, dirty: e.dirty, accessed: e.accessed))
        } else {
          walk(entries[i] & PageTableWalker.addressMask, level - 1, va, u, x, w)
        }
      }
    }
    walk(root, levels, 0, true, true, true)
    return stats
  }

  /// Physical addresses of every page-table page reachable from `root` (user half only unless
  /// `includeKernel`), bounded like `forEachUserLeaf`.
  public func tablePages(root: UInt64, includeKernel: Bool) -> (pages: [UInt64], stats: Stats) {
    var stats = Stats()
    var seen = Set<UInt64>()
    var out: [UInt64] = []
    func walk(_ table: UInt64, _ level: Int) {
      guard seen.insert(table).inserted else { return }
      guard let entries = memory.withBytes(at: table, count: 4096, { raw in
        (0..<512).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
      }) else {
        stats.anomalies += 1
        return
      }
      out.append(table)
      stats.tablesVisited += 1
      guard level > 1 else { return }
      let count = level == levels && !includeKernel ? 256 : 512
      for i in 0..<count {
        let e = Entry(raw: entries[i])
        guard e.present, !((level == 2 || level == 3) && e.large) else { continue }
        walk(entries[i] & PageTableWalker.addressMask, level - 1)
      }
    }
    walk(root, levels)
    return (out, stats)
  }
}
