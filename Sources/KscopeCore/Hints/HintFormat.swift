/// The hint channel format (version 1): the bytes the guest agent publishes in the shared
/// region (the ivshmem BAR, or a file) and the host reads at any moment without the guest's
/// help. Specified in host/docs/hint-channel-format.md; this file holds its constants.
///
/// The region is written by the guest, so to the host it is hostile input: every number here
/// that bounds something is a limit the reader enforces before it allocates or loops.
public enum HintFormat {
  /// `\x89KHN\r\n\x1a\n`: binary, and "KHN" (kscope hints) tells it from a color map.
  public static let magic: [UInt8] = [0x89, 0x4B, 0x48, 0x4E, 0x0D, 0x0A, 0x1A, 0x0A]
  public static let version: UInt16 = 1
  public static let headerSize = 256
  public static let directoryEntrySize = 32

  // Header field offsets.
  static let versionOffset = 8
  static let headerSizeOffset = 10
  static let flagsOffset = 12
  /// The seqlock word: odd while the agent writes, even when the region is stable.
  public static let generationOffset = 16
  static let regionSizeOffset = 24
  static let usedSizeOffset = 32
  public static let checksumOffset = 40
  static let publishedOffset = 48
  static let sectionCountOffset = 56
  static let pageSizeOffset = 60
  static let releaseLengthOffset = 64
  static let buildIDLengthOffset = 65
  static let releaseOffset = 72
  static let releaseCapacity = 64
  static let buildIDOffset = 136
  static let buildIDCapacity = 32
  static let reservedOffset = 168

  /// Header flag: something did not fit in the region or could not be learned; what is there is
  /// correct, but incomplete (metadata `partial.*` keys say what is missing).
  public static let flagPartial: UInt32 = 1

  /// Directory entry flags.
  static let sectionRequired: UInt32 = 1
  static let sectionTruncated: UInt32 = 2

  /// Region sizes the reader accepts. ivshmem regions are powers of two; QEMU's smallest
  /// useful one is 1 MiB, but `--out` files for tests may be smaller.
  public static let minRegionSize = 4096
  public static let maxRegionSize = 1 << 30

  public static let maxSections: UInt32 = 16
  /// Frames are indexed with 32-bit run ends: 2^32 frames of 4 KiB are 16 TiB of guest.
  public static let maxFrames: UInt64 = UInt64(UInt32.max)
  public static let maxPathLength = 4096
  public static let maxMetadataEntries = 256
  public static let maxMetadataString = 4096

  // Section payload sizes.
  static let kernelSectionSize = 96
  static let framesHeaderSize = 32
  static let fileRecordHeaderSize = 40
  static let extentSize = 24
  static let btfHeaderSize = 32
  /// The largest BTF the reader accepts, uncompressed (6.12's is 4.7 MB): the host allocates
  /// at most this much when it decompresses one.
  public static let maxBTFBytes: UInt64 = 64 << 20

  /// x86-64's __START_KERNEL_map: the kernel image's virtual base before KASLR.
  public static let startKernelMap: UInt64 = 0xFFFF_FFFF_8000_0000
  /// __START_KERNEL with the default CONFIG_PHYSICAL_START (16 MiB): where _text is linked.
  public static let linkedText: UInt64 = 0xFFFF_FFFF_8100_0000
  /// A frame number for "the agent could not learn which frame holds this page".
  public static let noFrame: UInt64 = .max
}

/// The kinds of sections in the directory; the raw values are on-disk codes.
public enum HintSectionKind: UInt32, Sendable, CaseIterable {
  case kernel = 1
  case frames = 2
  case files = 3
  case metadata = 4
  /// The kernel's BTF (/sys/kernel/btf/vmlinux), compressed. Not required: a reader that does
  /// not know it skips it.
  case btf = 5

  public var name: String {
    switch self {
    case .kernel: "kernel"
    case .frames: "frames"
    case .files: "files"
    case .metadata: "metadata"
    case .btf: "btf"
    }
  }
}

/// How the frame class table is stored.
public enum FrameTableEncoding: UInt32, Sendable {
  /// One 2-byte color map entry per frame.
  case raw = 1
  /// Runs of one entry: (entry u16, length - 1 u16), 4 bytes per run.
  case runs = 2
}

/// How the BTF section's blob is compressed.
public enum BTFCompression: UInt32, Sendable {
  case zstd = 1
}

/// Rounds up to a multiple of 8 (sections and file records are 8-aligned).
@inline(__always)
func align8(_ n: Int) -> Int { (n + 7) & ~7 }
