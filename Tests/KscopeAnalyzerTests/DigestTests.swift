import Foundation
import KscopeCore
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
  #expect(a.algorithm == .xxh64NonZeroBlocks)
  #expect(a.size == UInt64(size))
  dense[700_000] = 1
  try Data(dense).write(to: URL(fileURLWithPath: dir + "/changed"))
  #expect(try RAMImage(path: dir + "/changed").contentDigest() != a)
}
