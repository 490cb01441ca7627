/// What a guest page frame *is*: the color of VM state coloring.
///
/// The raw values are the on-disk codes of the color map format (5 bits; 0 is `unknown`, so a
/// zero-filled entry never claims anything). The names are stable: they are what the command
/// line and JSON use. To add a color: append a case with the next free code (never renumber),
/// give it a name, a summary and a clone action, and document it in the README's color table.
public enum Color: UInt8, CaseIterable, Sendable, Comparable {
  case unknown = 0
  case free = 1
  case zero = 2
  case kernelCode = 3
  case kernelData = 4
  case pageTable = 5
  case kernelHeap = 6
  case pageCache = 7
  case userCode = 8
  case userData = 9
  case kernelOther = 10
  case reserved = 11

  /// Codes 0..<32 fit the 5 color bits of a frame entry.
  public static let codeSpace = 32

  public static func < (a: Color, b: Color) -> Bool { a.rawValue < b.rawValue }

  /// The stable name used on the command line and in JSON.
  public var name: String {
    switch self {
    case .unknown: "unknown"
    case .free: "free"
    case .zero: "zero"
    case .kernelCode: "kernel-code"
    case .kernelData: "kernel-data"
    case .pageTable: "page-table"
    case .kernelHeap: "kernel-heap"
    case .pageCache: "page-cache"
    case .userCode: "user-code"
    case .userData: "user-data"
    case .kernelOther: "kernel-other"
    case .reserved: "reserved"
    }
  }

  public init?(name: String) {
    guard let c = Color.allCases.first(where: { $0.name == name }) else { return nil }
    self = c
  }

  /// One line: what a frame of this color holds.
  public var summary: String {
    switch self {
    case .unknown: "not classified: no source could say, or guest data was inconsistent"
    case .free: "free in the guest's page allocator (buddy), whole free blocks"
    case .zero: "content is all zeros (or the kernel's shared zero page)"
    case .kernelCode: "kernel image text (_text.._etext), module text"
    case .kernelData: "kernel image rodata, data and bss"
    case .pageTable: "a page table page (any level)"
    case .kernelHeap: "slab allocator memory"
    case .pageCache: "page cache: a cached page of a file (device, inode, offset)"
    case .userCode: "mapped executable in a user page table"
    case .userData: "anonymous user memory (heap, stack, private writes)"
    case .kernelOther: "in use by the kernel otherwise (vmalloc, page frags, DMA buffers, ...)"
    case .reserved: "not available to the allocator: firmware, holes, memblock reservations"
    }
  }

  /// What a clone does with a frame of this color (Kaleidoscope's propagation/allocation).
  public var cloneAction: CloneAction {
    switch self {
    case .free, .zero: .allocateZeroed
    case .kernelCode, .kernelData, .pageTable: .prefetchEagerly
    case .kernelHeap: .prefetchNeighbours
    case .pageCache: .prefetchFileOrder
    case .userCode: .prefetchRegion
    case .userData: .onDemandReadahead
    case .kernelOther, .reserved, .unknown: .onDemand
    }
  }
}

/// How the clone engine treats a color.
public enum CloneAction: String, CaseIterable, Sendable {
  case allocateZeroed = "allocate-zeroed"
  case prefetchEagerly = "prefetch-eagerly"
  case prefetchNeighbours = "prefetch-neighbours"
  case prefetchFileOrder = "prefetch-file-order"
  case prefetchRegion = "prefetch-region"
  case onDemandReadahead = "on-demand-readahead"
  case onDemand = "on-demand"

  public var summary: String {
    switch self {
    case .allocateZeroed: "never fetched: a zero page on first touch"
    case .prefetchEagerly: "fetched before or right after the clone resumes (small, hot, shared)"
    case .prefetchNeighbours: "fetched on demand together with its physical neighbours"
    case .prefetchFileOrder: "prefetched in file order (neighbouring offsets of the same inode)"
    case .prefetchRegion: "the whole mapped region prefetched on first touch"
    case .onDemandReadahead: "fetched on demand with a small physical read-ahead"
    case .onDemand: "fetched on demand, one page per fault"
    }
  }
}
