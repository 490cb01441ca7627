import CXXHash
import Dispatch
import KscopeCore
import KscopeOS
import Synchronization

/// The RAM file's content digest as a tree (`ImageDigest.Algorithm.xxh3BlockTree`): each
/// non-zero 64 KiB block hashed on its own with XXH3-128, then the (offset, hash) records in
/// offset order hashed once more.
///
/// The blocks are shared out in units of a few blocks through one atomic counter, so any number
/// of threads can work on it: `start()` puts one on a background thread (while the analyzer walks
/// on the other core), and `finish()` has the caller take units too once its own work is done,
/// then combines. Units are read with pread into a per-thread buffer that stays in the L2
/// cache, not through the file's mapping: the mapping is MADV_RANDOM, so touching all of it
/// costs one page fault per 4 KiB page (and page tables to tear down at exit), which made the
/// XXH64 digest run at ~1.7 GB/s. Only the file's data extents are read: holes are zeros.
public final class BlockTreeDigest: @unchecked Sendable {
  public static let blockSize = 1 << 16
  /// Blocks per unit of work: 256 KiB, read at once and hashed while in the cache.
  static let unitBlocks = 4

  private let file: MappedFile
  /// The units: ranges of block indices, in file order, each at most `unitBlocks` long.
  private let units: [Range<Int>]
  /// Each unit's first slot in `hashes` (slots follow the units' blocks, in order).
  private let firstSlot: [Int]
  /// Per candidate block: its XXH3-128 (low, high), and whether it holds a non-zero byte.
  private let hashes: UnsafeMutableBufferPointer<UInt64>
  private let nonZero: UnsafeMutableBufferPointer<Bool>
  private let next = Atomic<Int>(0)
  private let failure = Mutex<String?>(nil)
  private let background = DispatchGroup()

  /// `extents`: the file's data extents, in order (nil: all of it may hold data).
  public init(file: MappedFile, extents: [Range<Int>]?) {
    self.file = file
    let b = Self.blockSize
    var units: [Range<Int>] = []
    var firstSlot: [Int] = []
    var slots = 0
    var nextBlock = 0  // blocks below this are taken (a block straddling two extents counts once)
    for e in extents ?? [0..<file.size] where e.lowerBound < e.upperBound {
      let lo = max(max(e.lowerBound, 0) / b, nextBlock)
      let hi = (min(e.upperBound, file.size) + b - 1) / b
      var u = lo
      while u < hi {
        let end = min(u + Self.unitBlocks, hi)
        units.append(u..<end)
        firstSlot.append(slots)
        slots += end - u
        u = end
      }
      nextBlock = max(nextBlock, hi)
    }
    self.units = units
    self.firstSlot = firstSlot
    hashes = .allocate(capacity: 2 * slots)
    nonZero = .allocate(capacity: slots)
    nonZero.initialize(repeating: false)
  }

  deinit {
    background.wait()
    hashes.deallocate()
    nonZero.deallocate()
  }

  /// One background thread starts taking units.
  public func start() {
    background.enter()
    DispatchQueue.global().async {
      self.work()
      self.background.leave()
    }
  }

  /// Takes the units left on this thread, waits for the background one, and combines.
  public func finish() throws -> ImageDigest {
    work()
    background.wait()
    if let message = failure.withLock({ $0 }) { throw SnapshotError.badImage(message) }
    guard let state = XXH3_createState() else {
      throw SnapshotError.badImage("\(file.path): out of memory")
    }
    defer { XXH3_freeState(state) }
    XXH3_128bits_reset(state)
    // Records are staged in a small buffer and hashed in batches.
    var record = [UInt8](repeating: 0, count: 24 * 1024)
    var used = 0
    for (u, blocks) in units.enumerated() {
      for (i, block) in blocks.enumerated() where nonZero[firstSlot[u] + i] {
        let slot = firstSlot[u] + i
        record.withUnsafeMutableBytes { r in
          r.storeBytes(
            of: UInt64(block * Self.blockSize).littleEndian, toByteOffset: used, as: UInt64.self)
          r.storeBytes(of: hashes[2 * slot].littleEndian, toByteOffset: used + 8, as: UInt64.self)
          r.storeBytes(
            of: hashes[2 * slot + 1].littleEndian, toByteOffset: used + 16, as: UInt64.self)
        }
        used += 24
        if used == record.count {
          record.withUnsafeBytes { _ = kscope_xxh3_128_update(state, $0.baseAddress, used) }
          used = 0
        }
      }
    }
    record.withUnsafeBytes { _ = kscope_xxh3_128_update(state, $0.baseAddress, used) }
    let h = XXH3_128bits_digest(state)
    return .xxh128(low: h.low64, high: h.high64, size: UInt64(file.size), algorithm: .xxh3BlockTree)
  }

  /// Takes units until none are left (or one failed to read).
  private func work() {
    let b = Self.blockSize
    var buffer = [UInt8](repeating: 0, count: Self.unitBlocks * b)
    while true {
      let u = next.wrappingAdd(1, ordering: .relaxed).oldValue
      guard u < units.count else { return }
      let blocks = units[u]
      let start = blocks.lowerBound * b
      let count = min(blocks.upperBound * b, file.size) - start
      let got = file.read(into: &buffer, count: count, at: start)
      guard got == count else {
        let why = got == nil ? Files.lastErrorText() : "the file ended early"
        failure.withLock {
          $0 = $0 ?? "\(file.path): cannot read \(count) bytes at \(start) for its digest: \(why)"
        }
        // No one else need go on: the digest has failed.
        next.store(units.count, ordering: .relaxed)
        return
      }
      buffer.withUnsafeBytes { all in
        for i in 0..<blocks.count {
          let block = UnsafeRawBufferPointer(rebasing: all[(i * b)..<min((i + 1) * b, count)])
          guard !Memory.isZero(block) else { continue }
          let h = kscope_xxh3_128(block.baseAddress, block.count)
          let slot = firstSlot[u] + i
          hashes[2 * slot] = h.low64
          hashes[2 * slot + 1] = h.high64
          nonZero[slot] = true
        }
      }
    }
  }
}
