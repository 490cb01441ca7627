/// The kernel-symbol hints: where the guest kernel put itself. Each value is optional because
/// the agent publishes only what it could learn (and says how in the metadata).
public struct KernelSymbolHints: Sendable, Equatable {
  /// The virtual KASLR slide: `_text` minus where it was linked (vmcoreinfo's KERNELOFFSET).
  public var kaslrOffset: UInt64?
  /// `_text`, the first byte of the kernel image (virtual).
  public var text: KernelVirtualAddress?
  /// The kernel image's physical load offset (`phys_base`).
  public var physBase: UInt64?
  /// The direct map's base (`page_offset_base`).
  public var pageOffsetBase: KernelVirtualAddress?
  /// The struct page array's base (`vmemmap_base`).
  public var vmemmapBase: KernelVirtualAddress?
  /// The vmalloc area's base (`vmalloc_base`).
  public var vmallocBase: KernelVirtualAddress?
  /// The vmcoreinfo note (/sys/kernel/vmcoreinfo): physical address and size.
  public var vmcoreinfo: (address: GuestPhysicalAddress, size: UInt64)?
  /// Page table levels (4, or 5 with la57).
  public var pagingLevels: UInt8?

  public init() {}

  public static func == (a: Self, b: Self) -> Bool {
    a.kaslrOffset == b.kaslrOffset && a.text == b.text && a.physBase == b.physBase
      && a.pageOffsetBase == b.pageOffsetBase && a.vmemmapBase == b.vmemmapBase
      && a.vmallocBase == b.vmallocBase && a.vmcoreinfo?.address == b.vmcoreinfo?.address
      && a.vmcoreinfo?.size == b.vmcoreinfo?.size && a.pagingLevels == b.pagingLevels
  }
}

/// The per-frame class table: one color map entry (color in bits 0-4, flags above, see
/// color-map-format.md) per frame, as the guest's /proc/kpageflags and /proc/kpagecount say.
/// Kept as runs of equal entries (so a 4 MiB region describes a large guest and lookups stay
/// O(log runs) without expanding the table), or, when the region stored it raw, as the raw
/// entries: either way no array is larger than the bytes the region spent on the table.
public struct FrameClassTable: Sendable, Equatable {
  /// Frames the guest has (its /proc/kpageflags length). `frameCount < totalFrames` when the
  /// table was cut to fit the region.
  public var totalFrames: UInt64
  /// The entry of each run.
  private var runEntries: [UInt16] = []
  /// Each run's end (exclusive frame number), strictly increasing.
  private var runEnds: [UInt32] = []
  /// One entry per frame, when the table was stored raw (then the run arrays are empty).
  private var raw: [UInt16]? = nil

  public init(totalFrames: UInt64) { self.totalFrames = totalFrames }

  /// Builds the table from one entry per frame.
  public init(entries: [UInt16], totalFrames: UInt64? = nil) {
    self.totalFrames = totalFrames ?? UInt64(entries.count)
    for e in entries { append(e, count: 1) }
  }

  /// A table stored one entry per frame (the reader's raw encoding).
  init(rawEntries: [UInt16], totalFrames: UInt64) {
    self.totalFrames = totalFrames
    raw = rawEntries
  }

  /// Frames described, starting at frame 0.
  public var frameCount: UInt64 { raw.map { UInt64($0.count) } ?? UInt64(runEnds.last ?? 0) }
  public var truncated: Bool { frameCount < totalFrames }

  /// Runs of equal entries (O(frames) for a raw table).
  public var runCount: Int {
    guard let raw else { return runEntries.count }
    var n = 0
    for i in raw.indices where i == 0 || raw[i] != raw[i - 1] { n += 1 }
    return n
  }

  /// Bytes of the largest array the table holds (the reader keeps it within the region).
  public var largestArrayBytes: Int { raw.map { 2 * $0.count } ?? 4 * runEnds.count }

  /// Appends `count` frames of one entry (merging with the last run). The caller keeps the
  /// total under 2^32 frames.
  public mutating func append(_ entry: UInt16, count: UInt32) {
    guard count > 0 else { return }
    makeRuns()
    let end = (runEnds.last ?? 0) + count
    if let last = runEntries.last, last == entry {
      runEnds[runEnds.count - 1] = end
    } else {
      runEntries.append(entry)
      runEnds.append(end)
    }
  }

  /// Room for `n` runs (the reader knows how many a section holds).
  mutating func reserveRuns(_ n: Int) {
    runEntries.reserveCapacity(n)
    runEnds.reserveCapacity(n)
  }

  private mutating func makeRuns() {
    guard let r = raw else { return }
    raw = nil
    for e in r { append(e, count: 1) }
  }

  /// The entry of one frame, or nil when the table does not cover it.
  public func entry(_ frame: PageFrameNumber) -> FrameEntry? {
    guard frame.rawValue < frameCount else { return nil }
    if let raw { return FrameEntry(rawValue: raw[Int(frame.rawValue)]) }
    let f = UInt32(frame.rawValue)
    // The first run whose end is past the frame.
    var lo = 0
    var hi = runEnds.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if runEnds[mid] <= f { lo = mid + 1 } else { hi = mid }
    }
    return FrameEntry(rawValue: runEntries[lo])
  }

  /// Frames of each color code (index = code), for summaries.
  public func colorTotals() -> [UInt64] {
    var totals = [UInt64](repeating: 0, count: Color.codeSpace)
    forEachRun { _, n, e in totals[Int(e.colorCode)] += n }
    return totals
  }

  /// Calls `body` for every maximal run: first frame, length, entry.
  public func forEachRun(_ body: (UInt64, UInt64, FrameEntry) throws -> Void) rethrows {
    if let raw {
      var i = 0
      while i < raw.count {
        var j = i + 1
        while j < raw.count && raw[j] == raw[i] { j += 1 }
        try body(UInt64(i), UInt64(j - i), FrameEntry(rawValue: raw[i]))
        i = j
      }
      return
    }
    var start: UInt32 = 0
    for (e, end) in zip(runEntries, runEnds) {
      try body(UInt64(start), UInt64(end - start), FrameEntry(rawValue: e))
      start = end
    }
  }

  /// Equal when they describe the same frames the same way, however they are stored.
  public static func == (a: Self, b: Self) -> Bool {
    guard a.totalFrames == b.totalFrames, a.frameCount == b.frameCount else { return false }
    var ra: [(UInt64, UInt64, UInt16)] = []
    var rb: [(UInt64, UInt64, UInt16)] = []
    a.forEachRun { ra.append(($0, $1, $2.rawValue)) }
    b.forEachRun { rb.append(($0, $1, $2.rawValue)) }
    return ra.elementsEqual(rb) { $0 == $1 }
  }
}

/// Resident pages of one file: consecutive file pages, and where the agent could learn them,
/// the consecutive frames that hold them.
public struct FileExtent: Sendable, Equatable {
  /// The file page index (file offset / page size) of the first page.
  public var filePage: UInt64
  public var pages: UInt32
  /// The frame plus one, 0 when unknown: 8 bytes where an optional frame takes 16, so an extent
  /// is 24 bytes, not 32 (a hint region's files hold hundreds of thousands of them, and the
  /// reader's memory is bounded by the region's size). Frames are below 2^52.
  private var frameBits: UInt64

  /// The frame holding the first page (the rest follow it), or nil when unknown.
  public var frame: PageFrameNumber? {
    get { frameBits == 0 ? nil : PageFrameNumber(frameBits &- 1) }
    set { frameBits = newValue.map { $0.rawValue &+ 1 } ?? 0 }
  }

  public init(filePage: UInt64, pages: UInt32, frame: PageFrameNumber? = nil) {
    self.filePage = filePage
    self.pages = pages
    self.frameBits = frame.map { $0.rawValue &+ 1 } ?? 0
  }
}

/// One cached file of the guest's page cache.
public struct CachedFile: Sendable, Equatable {
  public var path: String
  /// The guest kernel's dev_t encoding (major << 20 | minor), as in color maps.
  public var device: UInt32
  public var inode: UInt64
  /// The file's size in bytes.
  public var size: UInt64
  /// Pages resident in the page cache when the agent looked.
  public var residentPages: UInt64
  /// Where the resident pages are; sorted by file page, never overlapping.
  public var extents: [FileExtent]
  /// The extents carry frames (the agent read them from its page map).
  public var framesKnown: Bool
  /// The extent list was cut to fit the region: it covers fewer pages than `residentPages`.
  public var extentsTruncated: Bool

  public init(
    path: String, device: UInt32, inode: UInt64, size: UInt64, residentPages: UInt64,
    extents: [FileExtent], framesKnown: Bool, extentsTruncated: Bool = false
  ) {
    self.path = path
    self.device = device
    self.inode = inode
    self.size = size
    self.residentPages = residentPages
    self.extents = extents
    self.framesKnown = framesKnown
    self.extentsTruncated = extentsTruncated
  }
}

/// The guest kernel's BTF as the agent publishes it: compressed, with the size and XXH64 of
/// the uncompressed blob, which the host checks after decompressing (the reader only checks
/// the section's structure; it never decompresses).
public struct PublishedBTF: Sendable, Equatable {
  public var compression: BTFCompression
  /// Bytes of the uncompressed blob (at most `HintFormat.maxBTFBytes`).
  public var size: UInt64
  /// XXH64 of the uncompressed blob.
  public var checksum: UInt64
  /// The compressed blob.
  public var data: [UInt8]

  public init(compression: BTFCompression, size: UInt64, checksum: UInt64, data: [UInt8]) {
    self.compression = compression
    self.size = size
    self.checksum = checksum
    self.data = data
  }
}

/// What the agent publishes, before it is fitted into a region.
public struct HintContent: Sendable {
  public var kernelRelease: String
  public var buildID: [UInt8]
  /// When the agent gathered it (the guest's clock, seconds since the Unix epoch).
  public var published: Int64
  public var pageSize: UInt32
  public var kernel: KernelSymbolHints
  public var frames: FrameClassTable?
  public var files: [CachedFile]
  public var metadata: [(key: String, value: String)]
  /// Something could not be learned (e.g. no root): the region is marked partial.
  public var incomplete: Bool
  /// The kernel's BTF, when the agent could read it.
  public var btf: PublishedBTF?

  public init(
    kernelRelease: String, buildID: [UInt8], published: Int64, pageSize: UInt32 = 4096,
    kernel: KernelSymbolHints, frames: FrameClassTable?, files: [CachedFile],
    metadata: [(key: String, value: String)] = [], incomplete: Bool = false, btf: PublishedBTF? = nil
  ) {
    self.btf = btf
    self.kernelRelease = kernelRelease
    self.buildID = buildID
    self.published = published
    self.pageSize = pageSize
    self.kernel = kernel
    self.frames = frames
    self.files = files
    self.metadata = metadata
    self.incomplete = incomplete
  }
}

/// A validated hint region, as the host reads it. Every value came from the guest but passed
/// the reader's checks (bounds, checksum, consistency); none of it is trusted beyond that.
public struct HintSet: Sendable {
  public var generation: UInt64
  public var regionSize: UInt64
  public var usedSize: UInt64
  public var published: Int64
  public var partial: Bool
  public var pageSize: UInt32
  public var kernelRelease: String
  public var buildID: [UInt8]
  public var kernel: KernelSymbolHints
  public var frames: FrameClassTable?
  /// The cached files, decoded one at a time when asked for (`CachedFiles`).
  public internal(set) var files: CachedFiles
  public var metadata: [(key: String, value: String)]
  /// The kernel's BTF, compressed, when the agent published it.
  public var btf: PublishedBTF? = nil

  /// A file's key (the writer keeps one record per key; the reader refuses a second).
  struct FileKey: Hashable {
    var device: UInt32
    var inode: UInt64
  }

  /// The build id as lower-case hex ("" when the agent had none).
  public var buildIDHex: String { hexString(buildID) }

  /// The class the guest's page flags give one frame, or nil when the table is absent or does
  /// not cover it.
  public func frameEntry(_ frame: PageFrameNumber) -> FrameEntry? { frames?.entry(frame) }

  /// The cached file with this inode on this device (dev_t as major << 20 | minor).
  public func file(device: UInt32, inode: UInt64) -> CachedFile? {
    files.index(device: device, inode: inode).map { files[$0] }
  }

  /// Every cached file with this inode, on any device (when the host knows only the inode).
  public func files(inode: UInt64) -> [CachedFile] {
    files.indices.filter { files.inode($0) == inode }.map { files[$0] }
  }

  /// The value of a metadata key.
  public func metadata(_ key: String) -> String? { metadata.first { $0.key == key }?.value }
}

/// The cached files of a validated region, held as the region holds them: the files section's
/// bytes, every record checked when the region was read, and a `CachedFile` decoded from its
/// record each time one is asked for. Decoded all at once, a region of tiny files (72-byte
/// records: a short path, one extent) cost about 2.6 times its bytes (a `CachedFile`, an extent
/// array and a dictionary entry each); held this way it costs its bytes and 8 more per file.
public struct CachedFiles: RandomAccessCollection, Sendable {
  /// The files section (checked by `HintFormat.decodeFiles`).
  let bytes: [UInt8]
  /// Where each record starts in `bytes`, in the region's order.
  let starts: [UInt32]
  /// Record numbers sorted by (device, inode), which are unique.
  let byKey: [UInt32]

  init(bytes: [UInt8], starts: [UInt32], byKey: [UInt32]) {
    self.bytes = bytes
    self.starts = starts
    self.byKey = byKey
  }

  public static let empty = CachedFiles(bytes: [], starts: [], byKey: [])

  public var startIndex: Int { 0 }
  public var endIndex: Int { starts.count }

  // Record fields (see hint-channel-format.md). The records were checked when the region was
  // read, so these reads are in bounds; a read that were not would give 0, never trap.
  private func u64(_ at: Int) -> UInt64 { (try? ByteReader(bytes).u64(at: at)) ?? 0 }
  private func u32(_ at: Int) -> UInt32 { (try? ByteReader(bytes).u32(at: at)) ?? 0 }
  private func u16(_ at: Int) -> UInt16 { (try? ByteReader(bytes).u16(at: at)) ?? 0 }

  func inode(_ i: Int) -> UInt64 { u64(Int(starts[i])) }
  func device(_ i: Int) -> UInt32 { u32(Int(starts[i]) + 24) }

  public subscript(i: Int) -> CachedFile {
    let at = Int(starts[i])
    let flags = u16(at + 28)
    let pathLength = Int(u16(at + 30))
    let extentCount = Int(u32(at + 32))
    let pathAt = Swift.min(at + HintFormat.fileRecordHeaderSize, bytes.count)
    let path = String(decoding: bytes[pathAt..<Swift.min(pathAt + pathLength, bytes.count)], as: UTF8.self)
    let extentsAt = pathAt + align8(pathLength)
    let n = Swift.min(extentCount, Swift.max(0, bytes.count - extentsAt) / HintFormat.extentSize)
    var extents: [FileExtent] = []
    extents.reserveCapacity(n)
    for k in 0..<n {
      let e = extentsAt + k * HintFormat.extentSize
      let frame = u64(e + 16)
      extents.append(
        FileExtent(
          filePage: u64(e), pages: u32(e + 8), frame: frame == HintFormat.noFrame ? nil : PageFrameNumber(frame)))
    }
    return CachedFile(
      path: path, device: u32(at + 24), inode: u64(at), size: u64(at + 8), residentPages: u64(at + 16),
      extents: extents, framesKnown: flags & 1 != 0, extentsTruncated: flags & 2 != 0)
  }

  /// The record number of the file with this key (binary search in `byKey`).
  func index(device: UInt32, inode: UInt64) -> Int? {
    var lo = 0
    var hi = byKey.count
    while lo < hi {
      let mid = (lo + hi) / 2
      let i = Int(byKey[mid])
      let d = self.device(i)
      let n = self.inode(i)
      if d == device && n == inode { return i }
      if (d, n) < (device, inode) { lo = mid + 1 } else { hi = mid }
    }
    return nil
  }
}
