#if canImport(Glibc)
  import Glibc
#endif

/// Byte tests on memory that the rest of kscope shares: the one zero-block test (RAM files,
/// guest frames, sparse copies) and libc's vectorised searches (memchr, memcmp, strnlen) so
/// that no other target imports Glibc for them.
public enum Memory {
  /// True when every byte of `block` is zero. Eight words are OR-ed per step (the compiler
  /// vectorises it), and the first non-zero 64 bytes end the test.
  @inline(__always)
  public static func isZero(_ block: UnsafeRawBufferPointer) -> Bool {
    guard let base = block.baseAddress else { return true }
    let n = block.count
    var w = 0
    while w + 64 <= n {
      var acc: UInt64 = 0
      for k in stride(from: 0, to: 64, by: 8) {
        acc |= base.loadUnaligned(fromByteOffset: w + k, as: UInt64.self)
      }
      if acc != 0 { return false }
      w += 64
    }
    while w < n {
      if base.load(fromByteOffset: w, as: UInt8.self) != 0 { return false }
      w += 1
    }
    return true
  }

  /// The first offset at or after `from` where `needle` occurs in `haystack` (memchr for its
  /// first byte, memcmp for the rest).
  public static func find(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer, from: Int = 0)
    -> Int?
  {
    guard let base = haystack.baseAddress, let first = needle.first, from >= 0,
      needle.count <= haystack.count, from <= haystack.count - needle.count
    else { return nil }
    let last = haystack.count - needle.count
    var i = from
    while i <= last {
      guard let p = memchr(base + i, Int32(first), last - i + 1) else { return nil }
      let at = UnsafeRawPointer(p) - base
      if needle.withUnsafeBytes({ memcmp(base + at, $0.baseAddress!, needle.count) }) == 0 {
        return at
      }
      i = at + 1
    }
    return nil
  }

  /// True when the `count` bytes at `a` and `b` are equal (memcmp).
  @inline(__always)
  public static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Bool {
    count <= 0 || memcmp(a, b, count) == 0
  }

  /// The length of the NUL-terminated string at `p`, reading at most `max` bytes (strnlen).
  @inline(__always)
  public static func cStringLength(_ p: UnsafeRawPointer, max: Int) -> Int {
    strnlen(p.assumingMemoryBound(to: CChar.self), max)
  }
}
