/// Bits of /proc/kpageflags (the kernel's include/uapi/linux/kernel-page-flags.h, plus the
/// kernel-internal bits fs/proc/page.c also reports from 32 up). Stable kernel ABI.
public enum KPF {
  public static let locked: UInt64 = 1 << 0
  public static let error: UInt64 = 1 << 1
  public static let referenced: UInt64 = 1 << 2
  public static let uptodate: UInt64 = 1 << 3
  public static let dirty: UInt64 = 1 << 4
  public static let lru: UInt64 = 1 << 5
  public static let active: UInt64 = 1 << 6
  public static let slab: UInt64 = 1 << 7
  public static let writeback: UInt64 = 1 << 8
  public static let reclaim: UInt64 = 1 << 9
  public static let buddy: UInt64 = 1 << 10
  public static let mmap: UInt64 = 1 << 11
  public static let anon: UInt64 = 1 << 12
  public static let swapcache: UInt64 = 1 << 13
  public static let swapbacked: UInt64 = 1 << 14
  public static let compoundHead: UInt64 = 1 << 15
  public static let compoundTail: UInt64 = 1 << 16
  public static let huge: UInt64 = 1 << 17
  public static let unevictable: UInt64 = 1 << 18
  public static let hwpoison: UInt64 = 1 << 19
  public static let nopage: UInt64 = 1 << 20
  public static let ksm: UInt64 = 1 << 21
  public static let thp: UInt64 = 1 << 22
  public static let offline: UInt64 = 1 << 23
  public static let zeroPage: UInt64 = 1 << 24
  public static let idle: UInt64 = 1 << 25
  public static let pgtable: UInt64 = 1 << 26
  public static let reserved: UInt64 = 1 << 32
  public static let mlocked: UInt64 = 1 << 33
}

/// A frame range of the kernel image (from /proc/iomem or the kernel's symbols) and its color.
public struct KernelImageRange: Sendable, Equatable {
  public var frames: Range<UInt64>
  public var color: Color
  public init(frames: Range<UInt64>, color: Color) {
    self.frames = frames
    self.color = color
  }
}

/// Colors frames from the kernel's own page flags: the rules `kscope color --kpageflags` and
/// (later) the guest agent's flag tables share. Pure: no I/O.
///
/// Rules, in order (the order matters: slab and page tables before anon and page cache, as a
/// slab field overlays `mapping` on 6.12):
/// no struct page / hwpoison / offline -> reserved; buddy -> free; the zero page -> zero;
/// slab -> kernel-heap; page table -> page-table; PG_reserved in the kernel image ranges ->
/// kernel-code/-data;
/// anon -> user-data; on an LRU list -> page-cache; PG_reserved or outside RAM -> reserved;
/// a frame with no flags at all (and no mappings) -> unknown; anything else -> kernel-other.
/// Compound tail pages take their head's color (6.12 marks slab only on the head).
///
/// What page flags cannot tell: user-code (executable mappings need page tables), and what a
/// flagless frame is: a free page on a per-CPU list, a page whose struct page is not yet
/// initialised (deferred init), or a flagless kernel allocation (vmalloc, page frags) all
/// read as 0, so such frames are `unknown` rather than a guess. /proc/kpagecount is a map
/// count, not a reference count: it only sets `mapped`/`shared`.
public struct KernelPageFlagsClassifier: Sendable {
  public var kernelImage: [KernelImageRange]
  /// Frame ranges of System RAM, if known; frames outside them are reserved.
  public var ram: [Range<UInt64>]?

  public init(kernelImage: [KernelImageRange] = [], ram: [Range<UInt64>]? = nil) {
    self.kernelImage = kernelImage.sorted { $0.frames.lowerBound < $1.frames.lowerBound }
    self.ram = ram?.sorted { $0.lowerBound < $1.lowerBound }
  }

  /// The color of one frame from its own flags, ignoring compound context.
  public func color(flags f: UInt64, frame: UInt64, mapCount: UInt64? = nil) -> Color {
    if f & (KPF.nopage | KPF.hwpoison | KPF.offline) != 0 { return .reserved }
    if f & KPF.buddy != 0 { return .free }
    if f & KPF.zeroPage != 0 { return .zero }
    if f & KPF.slab != 0 { return .kernelHeap }
    if f & KPF.pgtable != 0 { return .pageTable }
    // The image is PG_reserved; parts the kernel freed after boot (x86-64's unused
    // decrypted-bss padding, up to 2 MiB inside "Kernel bss") are ordinary pages again.
    if f & KPF.reserved != 0, let c = imageColor(frame) { return c }
    if f & KPF.anon != 0 { return .userData }
    if f & KPF.lru != 0 { return .pageCache }
    if f & KPF.reserved != 0 { return .reserved }
    if let ram, !ram.contains(where: { $0.contains(frame) }) { return .reserved }
    if f == 0 && (mapCount ?? 0) == 0 { return .unknown }
    return .kernelOther
  }

  /// Flags a frame carries, from its page flags and map count (nil when unknown).
  public func flags(flags f: UInt64, mapCount: UInt64?) -> PageFlags {
    var p = PageFlags()
    if f & KPF.mmap != 0 || (mapCount ?? 0) > 0 { p.insert(.mapped) }
    if (mapCount ?? 0) > 1 { p.insert(.shared) }
    if f & (KPF.dirty | KPF.writeback) != 0 { p.insert(.dirty) }
    if f & (KPF.thp | KPF.huge) != 0 { p.insert(.huge) }
    if f & KPF.referenced != 0 { p.insert(.referenced) }
    if f & (KPF.unevictable | KPF.mlocked) != 0 { p.insert(.locked) }
    return p
  }

  /// Colors every frame. `mapCounts`, when given, must have one value per frame.
  public func classify(flags: [UInt64], mapCounts: [UInt64]?) -> [UInt16] {
    let counts = mapCounts.flatMap { $0.count == flags.count ? $0 : nil }
    var out = [UInt16](repeating: 0, count: flags.count)
    var headColor: Color? = nil
    for i in 0..<flags.count {
      let f = flags[i]
      let frame = UInt64(i)
      let color: Color
      if f & KPF.compoundTail != 0, let h = headColor, f & KPF.buddy == 0 {
        color = h
      } else {
        color = self.color(flags: f, frame: frame, mapCount: counts?[i])
      }
      if f & KPF.compoundHead != 0 {
        headColor = color
      } else if f & KPF.compoundTail == 0 {
        headColor = nil
      }
      out[i] = FrameEntry(color, self.flags(flags: f, mapCount: counts?[i])).rawValue
    }
    return out
  }

  private func imageColor(_ frame: UInt64) -> Color? {
    for r in kernelImage where r.frames.contains(frame) { return r.color }
    return nil
  }
}
