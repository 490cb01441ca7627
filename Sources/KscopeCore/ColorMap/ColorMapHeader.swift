/// Where a color map's classification came from (a bit set, stored in the header).
public struct ColorSources: OptionSet, Sendable, Hashable {
  public let rawValue: UInt32
  public init(rawValue: UInt32) { self.rawValue = rawValue }

  /// The kernel's own per-page flags (/proc/kpageflags, or the agent's copy of it).
  public static let kernelPageFlags = ColorSources(rawValue: 1 << 0)
  /// The kernel's resource map (/proc/iomem): RAM ranges and the kernel image.
  public static let kernelResourceMap = ColorSources(rawValue: 1 << 1)
  /// Host introspection of guest memory (page tables, struct page, free lists).
  public static let hostIntrospection = ColorSources(rawValue: 1 << 2)
  /// Hints published by the guest agent.
  public static let guestHints = ColorSources(rawValue: 1 << 3)
  /// Page contents (zero detection).
  public static let contentScan = ColorSources(rawValue: 1 << 4)

  public static let named: [(ColorSources, String)] = [
    (.kernelPageFlags, "kernel-page-flags"), (.kernelResourceMap, "kernel-resource-map"),
    (.hostIntrospection, "host-introspection"), (.guestHints, "guest-hints"),
    (.contentScan, "content-scan"),
  ]

  public var names: [String] {
    var out = ColorSources.named.filter { contains($0.0) }.map(\.1)
    let unknown = rawValue & ~ColorSources.named.reduce(0) { $0 | $1.0.rawValue }
    if unknown != 0 { out.append("unknown-0x" + String(unknown, radix: 16)) }
    return out
  }
}

/// A digest of the memory image (or input) a map describes, so a map can be matched to it.
public struct ImageDigest: Sendable, Hashable {
  public enum Algorithm: UInt32, Sendable {
    case none = 0
    /// XXH64 of every byte.
    case xxh64 = 1
    /// XXH64 over each 64 KiB block that is not all zeros, as its file offset (8 bytes,
    /// little-endian) then its bytes, in offset order: a content digest of a (sparse) RAM image
    /// whose cost follows the data it holds, the same for a live RAM file and its sparse copy.
    case xxh64NonZeroBlocks = 2
    /// The same content (each 64 KiB block that is not all zeros, holes and zero blocks alike)
    /// hashed as a tree: each such block's XXH3-128, then XXH3-128 over one record per block
    /// (its file offset, 8 bytes little-endian, then its hash's low and high 64 bits, each
    /// little-endian), in offset order. Blocks are hashed independently, so several cores share
    /// the work, and XXH3 (vectorized) hashes several times faster than XXH64.
    case xxh3BlockTree = 3

    /// How many digest bytes the algorithm produces.
    public var byteCount: Int {
      switch self {
      case .none: 0
      case .xxh64, .xxh64NonZeroBlocks: 8
      case .xxh3BlockTree: 16
      }
    }
  }
  public var algorithm: Algorithm
  /// The digest bytes (`algorithm.byteCount`: 8 for the XXH64 ones, 16 for XXH3-128; at most
  /// 32), little-endian.
  public var bytes: [UInt8]
  /// Size in bytes of what was digested.
  public var size: UInt64

  public init(algorithm: Algorithm, bytes: [UInt8], size: UInt64) {
    self.algorithm = algorithm
    self.bytes = bytes
    self.size = size
  }

  public static let none = ImageDigest(algorithm: .none, bytes: [], size: 0)

  public static func xxh64(_ value: UInt64, size: UInt64, algorithm: Algorithm = .xxh64) -> ImageDigest {
    ImageDigest(
      algorithm: algorithm, bytes: (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) },
      size: size)
  }

  /// A 128-bit XXH3 digest: its low 64 bits then its high 64 bits, each little-endian.
  public static func xxh128(low: UInt64, high: UInt64, size: UInt64, algorithm: Algorithm = .xxh3BlockTree)
    -> ImageDigest
  {
    ImageDigest(
      algorithm: algorithm,
      bytes: (0..<8).map { UInt8(truncatingIfNeeded: low >> (8 * $0)) }
        + (0..<8).map { UInt8(truncatingIfNeeded: high >> (8 * $0)) },
      size: size)
  }

  /// "xxh64:0123...", "xxh3-tree:0123..." (as xxhsum prints the value) or "none".
  public var text: String {
    switch algorithm {
    case .none: "none"
    case .xxh64: "xxh64:" + hexString(bytes.reversed())
    case .xxh64NonZeroBlocks: "xxh64-blocks:" + hexString(bytes.reversed())
    case .xxh3BlockTree: "xxh3-tree:" + hexString(bytes.reversed())
    }
  }
}

/// Everything in a color map besides the frames: what it describes and how it was made.
public struct ColorMapHeader: Sendable, Equatable {
  public var pageSize: UInt32
  public var sources: ColorSources
  /// Seconds since the Unix epoch.
  public var created: Int64
  public var image: ImageDigest
  /// `uname -r` of the kernel whose memory this is, if known.
  public var kernelRelease: String?
  /// The kernel's GNU build id in hex, if known.
  public var kernelBuildID: String?
  /// Free-form provenance ("generator", "source.path", ...), in insertion order.
  public var metadata: [(key: String, value: String)]

  public init(
    pageSize: UInt32 = 4096, sources: ColorSources = [], created: Int64 = 0,
    image: ImageDigest = .none, kernelRelease: String? = nil, kernelBuildID: String? = nil,
    metadata: [(key: String, value: String)] = []
  ) {
    self.pageSize = pageSize
    self.sources = sources
    self.created = created
    self.image = image
    self.kernelRelease = kernelRelease
    self.kernelBuildID = kernelBuildID
    self.metadata = metadata
  }

  public func value(for key: String) -> String? { metadata.first { $0.key == key }?.value }

  public static func == (a: ColorMapHeader, b: ColorMapHeader) -> Bool {
    a.pageSize == b.pageSize && a.sources == b.sources && a.created == b.created
      && a.image == b.image && a.kernelRelease == b.kernelRelease
      && a.kernelBuildID == b.kernelBuildID && a.metadata.map(\.key) == b.metadata.map(\.key)
      && a.metadata.map(\.value) == b.metadata.map(\.value)
  }
}
