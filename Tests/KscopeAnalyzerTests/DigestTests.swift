import CXXHash
import Foundation
import KscopeCore
import KscopeOS
import KscopeSnapshot
import Testing

@testable import KscopeAnalyzer

/// The RAM digest depends on content only: written zeros and holes digest alike.
@Test func ramDigestIgnoresHolesButNotContent() throws {
  let dir = NSTemporaryDirectory() + "kscope-digest-\(getpid())"
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: dir) }
  let size = 1 << 20
  var dense = [UInt8](repeating: 0, count: size)
  for i in 0..<5000 { dense[i] = UInt8(truncatingIfNeeded: i &* 7 &+ 1) }
  for i in (300_000)..<(300_100) { dense[i] = 0xAB }
  try Data(dense).write(to: URL(fileURLWithPath: dir + "/dense"))
  // The same content with the zero stretches left as holes.
  let fd = open(dir + "/sparse", O_RDWR | O_CREAT, 0o644)
  #expect(fd >= 0)
  #expect(ftruncate(fd, off_t(size)) == 0)
  dense.withUnsafeBytes { b in
    _ = pwrite(fd, b.baseAddress!, 5000, 0)
    _ = pwrite(fd, b.baseAddress! + 300_000, 100, 300_000)
  }
  close(fd)
  let a = try RAMImage(path: dir + "/dense").contentDigest()
  let b = try RAMImage(path: dir + "/sparse").contentDigest()
  #expect(a == b)
  #expect(a.algorithm == .xxh3BlockTree)
  #expect(a.size == UInt64(size))
  dense[700_000] = 1
  try Data(dense).write(to: URL(fileURLWithPath: dir + "/changed"))
  #expect(try RAMImage(path: dir + "/changed").contentDigest() != a)
}

/// The newest digest (XXH3 block tree) sees one changed byte anywhere: in a block of data, in
/// a block that was all zeros (a hole or written zeros), in the file's first and last byte, at
/// a block's edges; and it is the tree the format describes, computed here on one thread with
/// libxxhash directly.
@Test func blockTreeDigestSeesEveryChangedByte() throws {
  let dir = NSTemporaryDirectory() + "kscope-tree-digest-\(getpid())"
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: dir) }
  let block = 1 << 16
  let size = 40 * block + 1000  // a short last block
  var bytes = [UInt8](repeating: 0, count: size)
  var x: UInt64 = 0x9E37_79B9_7F4A_7C15
  // Data in blocks 1-6 and 20, zeros elsewhere.
  for i in Array(block..<(7 * block)) + Array((20 * block)..<(21 * block)) {
    x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    bytes[i] = UInt8(truncatingIfNeeded: x >> 56)
  }
  let path = dir + "/ram"
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  let base = try RAMImage(path: path).contentDigest()
  #expect(base.algorithm == .xxh3BlockTree)
  #expect(base.bytes.count == 16)
  #expect(base.size == UInt64(size))
  #expect(base == reference(bytes))
  // Every position class, one at a time (each differs from the base and from the others).
  var seen: Set<[UInt8]> = [base.bytes]
  for at in [0, block - 1, block, 3 * block + 12345, 7 * block - 1, 7 * block, 12 * block + 7, 20 * block + 1, size - 1] {
    var changed = bytes
    changed[at] ^= 0x01
    try Data(changed).write(to: URL(fileURLWithPath: path))
    let d = try RAMImage(path: path).contentDigest()
    #expect(d != base, "a change at \(at) went unseen")
    #expect(d == reference(changed))
    #expect(seen.insert(d.bytes).inserted, "a change at \(at) gave another change's digest")
  }
  // The same bytes in a sparse file (holes for the zero blocks) digest alike.
  let sparse = dir + "/sparse"
  let fd = open(sparse, O_RDWR | O_CREAT, 0o644)
  #expect(fd >= 0)
  #expect(ftruncate(fd, off_t(size)) == 0)
  bytes.withUnsafeBytes { b in
    _ = pwrite(fd, b.baseAddress! + block, 6 * block, off_t(block))
    _ = pwrite(fd, b.baseAddress! + 20 * block, block, off_t(20 * block))
  }
  close(fd)
  #expect(try RAMImage(path: sparse).contentDigest() == base)
}

/// The block tree, on one thread: XXH3-128 of each non-zero 64 KiB block, then XXH3-128 of the
/// records (offset, low, high; little-endian) in order.
private func reference(_ bytes: [UInt8]) -> ImageDigest {
  let block = 1 << 16
  var records: [UInt8] = []
  bytes.withUnsafeBytes { all in
    for off in stride(from: 0, to: bytes.count, by: block) {
      let b = UnsafeRawBufferPointer(rebasing: all[off..<min(off + block, bytes.count)])
      guard b.contains(where: { $0 != 0 }) else { continue }
      let h = XXH3_128bits(b.baseAddress, b.count)
      for v in [UInt64(off), h.low64, h.high64] {
        for i in 0..<8 { records.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
      }
    }
  }
  let h = records.withUnsafeBytes { XXH3_128bits($0.baseAddress, $0.count) }
  return .xxh128(low: h.low64, high: h.high64, size: UInt64(bytes.count))
}

/// A map made with the XXH64 block digest (algorithm 2, before the block tree) still verifies:
/// the digest is recomputed with the map's own algorithm, through the file format, and equals
/// XXH64 over (offset, bytes) of the non-zero blocks as the format describes; a changed byte
/// still fails it.
@Test func oldAlgorithmMapsStillVerify() throws {
  let dir = NSTemporaryDirectory() + "kscope-old-digest-\(getpid())"
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: dir) }
  let block = 1 << 16
  var bytes = [UInt8](repeating: 0, count: 8 * block)
  for i in (2 * block)..<(2 * block + 5000) { bytes[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 5) }
  bytes[7 * block + 9] = 0xEE
  let path = dir + "/ram"
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  var h = XXH64()
  for off in [2 * block, 7 * block] {
    for i in 0..<8 { h.update([UInt8(truncatingIfNeeded: UInt64(off) >> (8 * UInt64(i)))]) }
    h.update(Array(bytes[off..<(off + block)]))
  }
  let old = ImageDigest.xxh64(h.finish(), size: UInt64(bytes.count), algorithm: .xxh64NonZeroBlocks)
  let map = ColorMap(
    header: ColorMapHeader(pageSize: 4096, sources: [], created: 0, image: old),
    entries: [UInt16](repeating: FrameEntry(.free, []).rawValue, count: bytes.count / 4096), extents: [])
  let header = try ColorMapFormat.decode(ColorMapFormat.encode(map)).header
  let ram = try RAMImage(path: path)
  #expect(try ram.contentDigest(algorithm: header.image.algorithm) == header.image)
  #expect(try ram.contentDigest() != header.image)
  bytes[2 * block + 6000] = 1  // in the block, past its data
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  #expect(try RAMImage(path: path).contentDigest(algorithm: header.image.algorithm) != header.image)
}

/// Looking for the vmcoreinfo note page by page (`color --no-hints` with no debug info) reads
/// no hole: on tmpfs, where snapshots live, reading a hole through the mapping allocates it, and
/// a 512 MiB guest's sparse RAM file grew from 128 MiB to 510 MiB in one run. The same holds
/// for the block-tree digest, which reads with pread.
@Test func noteSearchAndDigestLeaveHolesAlone() throws {
  let path = "/dev/shm/kscope-holes-\(getpid())"
  defer { unlink(path) }
  let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
  #expect(fd >= 0)
  #expect(ftruncate(fd, off_t(64 << 20)) == 0)
  let data = [UInt8](repeating: 0x5A, count: 1 << 16)
  data.withUnsafeBytes { b in
    _ = pwrite(fd, b.baseAddress!, b.count, 0)
    _ = pwrite(fd, b.baseAddress!, b.count, off_t(40 << 20))
  }
  close(fd)
  let before = SparseFile.allocatedBytes(path)
  #expect(before >= 128 << 10 && before < 1 << 20)
  let ram = try RAMImage(path: path)
  var offered = 0
  GuestKernelImage.pageAlignedNotes(in: ram) { _, _ in
    offered += 1
    return false
  }
  #expect(offered == 0)
  _ = try ram.contentDigest()
  #expect(SparseFile.allocatedBytes(path) == before, "\(SparseFile.allocatedBytes(path) >> 10) KiB allocated, \(before >> 10) KiB before")
}
