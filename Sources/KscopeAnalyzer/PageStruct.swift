import KscopeCore
import KscopeLayout

/// Where `struct page` keeps what the classifier reads, and the kernel's page-flag bits, from
/// the layout (DWARF), never hard-coded. To support a new kernel version: make sure its layout
/// has these members and enum constants (renamed ones go in the alternatives lists) and a
/// page_type encoding (KscopeLayout.PageTypeEncoding).
public struct PageStructLayout: Sendable {
  public var size: Int
  public var flags: Int
  public var compoundHead: Int
  public var mapping: Int
  public var index: Int
  public var privateField: Int
  public var pageType: Int
  public var refcount: Int
  public var encoding: PageTypeEncoding
  /// PG_* bit numbers; nil where this kernel has no such flag (PG_slab became a page type).
  public var pgReserved: Int
  public var pgHead: Int
  public var pgSlab: Int?
  public var pgLRU: Int
  public var pgDirty: Int
  public var pgWriteback: Int
  public var pgReferenced: Int
  public var pgUnevictable: Int
  public var pgMlocked: Int?
  public var pgHWPoison: Int?

  public init(layout: KernelLayout) throws(LayoutError) {
    size = try layout.size(of: "page")
    flags = try layout.offset(of: "page", member: "flags")
    compoundHead = try layout.offset(of: "page", member: "compound_head")
    mapping = try layout.offset(of: "page", member: "mapping")
    index = try layout.offset(of: "page", member: "index")
    privateField = try layout.offset(of: "page", member: "private")
    pageType = try layout.offset(of: "page", member: ["page_type", "_mapcount"])
    refcount = try layout.offset(of: "page", member: ["_refcount", "_count"])
    encoding = try layout.pageTypeEncoding()
    func bit(_ name: String) throws(LayoutError) -> Int { Int(try layout.enumValue("pageflags", name)) }
    func optionalBit(_ name: String) -> Int? { (try? layout.enumValue("pageflags", name)).map { Int($0) } }
    pgReserved = try bit("PG_reserved")
    pgHead = try bit("PG_head")
    pgSlab = optionalBit("PG_slab")
    pgLRU = try bit("PG_lru")
    pgDirty = try bit("PG_dirty")
    pgWriteback = try bit("PG_writeback")
    pgReferenced = try bit("PG_referenced")
    pgUnevictable = try bit("PG_unevictable")
    pgMlocked = optionalBit("PG_mlocked")
    pgHWPoison = optionalBit("PG_hwpoison")
    guard size >= 32, size <= 256, [flags, compoundHead, mapping, index, privateField].allSatisfy({ $0 + 8 <= size }),
      pageType + 4 <= size, refcount + 4 <= size
    else { throw .incomplete(missing: ["a plausible struct page (size \(size))"]) }
  }
}

/// The fields of one struct page that classification needs (all guest data: untrusted).
public struct PageRecord: Sendable, Hashable {
  public var flags: UInt64
  public var compoundHead: UInt64
  public var mapping: UInt64
  public var index: UInt64
  public var privateValue: UInt64
  public var pageType: UInt32
  public var refcount: UInt32

  public init(
    flags: UInt64 = 0, compoundHead: UInt64 = 0, mapping: UInt64 = 0, index: UInt64 = 0,
    privateValue: UInt64 = 0, pageType: UInt32 = 0xFFFF_FFFF, refcount: UInt32 = 1
  ) {
    self.flags = flags
    self.compoundHead = compoundHead
    self.mapping = mapping
    self.index = index
    self.privateValue = privateValue
    self.pageType = pageType
    self.refcount = refcount
  }

  @inline(__always)
  public init(_ raw: UnsafeRawBufferPointer, at o: Int, _ l: PageStructLayout) {
    func u64(_ f: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o + f, as: UInt64.self)) }
    func u32(_ f: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o + f, as: UInt32.self)) }
    flags = u64(l.flags)
    compoundHead = u64(l.compoundHead)
    mapping = u64(l.mapping)
    index = u64(l.index)
    privateValue = u64(l.privateField)
    pageType = u32(l.pageType)
    refcount = u32(l.refcount)
  }

  @inline(__always) func has(_ bit: Int?) -> Bool {
    guard let bit, bit >= 0, bit < 64 else { return false }
    return flags & (1 << UInt64(bit)) != 0
  }
  /// A tail page of a compound page points at its head with bit 0 set.
  public var isTail: Bool { compoundHead & 1 != 0 }
}

/// What a single struct page says about its frame.
public enum PageVerdict: Sendable, Equatable {
  case color(Color, PageFlags)
  /// The head of a free buddy block of 2^order frames.
  case freeBlock(order: Int)
  /// A page-cache page: its `mapping` (an address_space) and file page index.
  case pageCache(mapping: UInt64, index: UInt64, PageFlags)
  /// A tail page: take the head's verdict.
  case tail(headPage: UInt64)
  /// Guest data that cannot be right: the frame is `unknown` + `anomaly`, counted under this name.
  case anomaly(String)
}

/// The rules, as a pure function of one struct page. Order matters: types (buddy, slab, page
/// table) first, then the kernel image (reserved frames inside its symbols' ranges), anon and
/// page cache, other reserved frames, and last the reference count.
///
/// To add a color: decide which struct page fields identify it, add the test here at the
/// right place in the order, and a unit test with a crafted record.
public struct PageClassifier: Sendable {
  public var layout: PageStructLayout
  /// Physical frame ranges of the kernel image, with their color.
  public var kernelImage: [KernelImageRange]
  /// The kernel's shared zero page, if known.
  public var zeroPageFrame: UInt64?
  public static let maxOrder = 10

  public init(layout: PageStructLayout, kernelImage: [KernelImageRange], zeroPageFrame: UInt64?) {
    self.layout = layout
    self.kernelImage = kernelImage
    self.zeroPageFrame = zeroPageFrame
  }

  public func verdict(_ r: PageRecord, frame: UInt64) -> PageVerdict {
    if r.isTail { return .tail(headPage: r.compoundHead & ~1) }
    let enc = layout.encoding
    if enc.has(.buddy, pageType: r.pageType) {
      let order = r.privateValue
      guard order <= UInt64(PageClassifier.maxOrder) else { return .anomaly("buddy order beyond MAX_ORDER") }
      guard frame & ((1 << order) - 1) == 0 else { return .anomaly("misaligned buddy block") }
      return .freeBlock(order: Int(order))
    }
    if enc.has(.offline, pageType: r.pageType) || enc.has(.guard, pageType: r.pageType)
      || r.has(layout.pgHWPoison)
    {
      return .color(.reserved, [])
    }
    if frame == zeroPageFrame { return .color(.zero, []) }
    if r.has(layout.pgSlab) || enc.has(.slab, pageType: r.pageType) { return .color(.kernelHeap, []) }
    if enc.has(.table, pageType: r.pageType) { return .color(.pageTable, []) }
    // The kernel image is PG_reserved; parts of its range the kernel freed after boot (init
    // sections, alignment gaps) are ordinary pages again and fall through to the rules below.
    if r.has(layout.pgReserved) {
      for k in kernelImage where k.frames.contains(frame) {
        return .color(k.color, k.color == .kernelCode ? .executable : [])
      }
    }
    var f = PageFlags()
    if r.has(layout.pgDirty) || r.has(layout.pgWriteback) { f.insert(.dirty) }
    if r.has(layout.pgReferenced) { f.insert(.referenced) }
    if r.has(layout.pgUnevictable) || r.has(layout.pgMlocked) { f.insert(.locked) }
    // _mapcount starts at -1: 0 means mapped once, more means shared.
    let mapcount = Int32(bitPattern: r.pageType)
    if r.mapping & 1 != 0 || r.mapping & 3 == 2 {
      if mapcount >= 0 { f.insert(.mapped) }
      if mapcount >= 1 { f.insert(.shared) }
      // Bit 0: anon (or KSM with bit 1). Bit 1 alone: a movable non-LRU page (zsmalloc, balloon).
      return .color(r.mapping & 1 != 0 ? .userData : .kernelOther, f)
    }
    if r.mapping != 0 {
      if mapcount >= 0 { f.insert(.mapped) }
      if mapcount >= 1 { f.insert(.shared) }
      return .pageCache(mapping: r.mapping, index: r.index, f)
    }
    if r.has(layout.pgReserved) { return .color(.reserved, []) }
    // Allocated pages hold a reference; zero means free (on a per-CPU list, or in flight).
    if r.refcount == 0 { return .color(.free, []) }
    return .color(.kernelOther, f)
  }
}
