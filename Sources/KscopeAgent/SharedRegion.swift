import KscopeCore
import Synchronization
import KscopeOS

/// The shared region, mapped MAP_SHARED: the ivshmem BAR2 (sysfs `resource2`) or a plain
/// file (`--out`). Owns the mapping and its descriptor; unmaps and closes on deinit.
///
/// Publishing follows a seqlock: the generation word (8 aligned bytes at offset 16) is made odd,
/// everything else is written, then the generation becomes the next even value. The host reads
/// the generation, copies, reads it again, and keeps the copy only if both are the same even
/// value (and the copy's checksum, which covers the final generation, matches).
public struct SharedRegion: ~Copyable {
  let mapping: SharedMapping
  var base: UnsafeMutableRawPointer { mapping.base }
  public var size: Int { mapping.size }
  public var path: String { mapping.path }
  /// The region file's device and inode (st_dev, st_ino), so the page-cache scan can skip it.
  public var identity: (device: UInt64, inode: UInt64) { (mapping.device, mapping.inode) }

  /// Maps an existing file or device resource of its current size. With `createSize`, a
  /// missing or empty file is created (or grown) to that size first.
  public init(path: String, createSize: Int? = nil) throws(AgentError) {
    do {
      mapping = try SharedMapping(
        path: path, createSize: createSize,
        allowedSizes: HintFormat.minRegionSize...HintFormat.maxRegionSize)
    } catch {
      throw AgentError(error.description)
    }
  }

  /// The generation word as it is now.
  public var generation: UInt64 {
    UInt64(littleEndian: base.load(fromByteOffset: HintFormat.generationOffset, as: UInt64.self))
  }

  private func storeGeneration(_ g: UInt64) {
    // An aligned 8-byte store: the host never sees half of it. The fences keep the compiler and
    // the CPU from moving the content writes across the generation writes.
    atomicMemoryFence(ordering: .sequentiallyConsistent)
    base.storeBytes(of: g.littleEndian, toByteOffset: HintFormat.generationOffset, as: UInt64.self)
    atomicMemoryFence(ordering: .sequentiallyConsistent)
  }

  /// Publishes an encoding whose generation field holds `bytes`' final (even) generation.
  public func publish(_ bytes: [UInt8]) {
    precondition(bytes.count <= size && bytes.count >= HintFormat.headerSize)
    let final = UInt64(bytes[16]) | UInt64(bytes[17]) << 8 | UInt64(bytes[18]) << 16
      | UInt64(bytes[19]) << 24 | UInt64(bytes[20]) << 32 | UInt64(bytes[21]) << 40
      | UInt64(bytes[22]) << 48 | UInt64(bytes[23]) << 56
    storeGeneration(final &- 1)
    bytes.withUnsafeBytes { src in
      let g = HintFormat.generationOffset
      (base).copyMemory(from: src.baseAddress!, byteCount: g)
      (base + g + 8).copyMemory(from: src.baseAddress! + g + 8, byteCount: src.count - g - 8)
    }
    storeGeneration(final)
  }

  /// Writes bytes as they are, generation included (the garbage mode: no protocol at all).
  public func writeRaw(_ bytes: [UInt8], at offset: Int = 0) {
    let n = min(bytes.count, size - offset)
    guard n > 0 else { return }
    bytes.withUnsafeBytes { src in (base + offset).copyMemory(from: src.baseAddress!, byteCount: n) }
    atomicMemoryFence(ordering: .sequentiallyConsistent)
  }
}
