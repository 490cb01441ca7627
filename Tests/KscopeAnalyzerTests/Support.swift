import Foundation
import KscopeSnapshot
import KscopeLayout
import KscopeTestSupport
import Testing

@testable import KscopeAnalyzer

/// The layouts recorded from the Debian 6.1 and 6.12 cloud kernels pinned in host/kernels.lock
/// (committed beside the layout tests), so rules are tested against real offsets and flag numbers.
func recordedLayout(_ series: String) throws -> KernelLayout {
  guard let release = KernelLock.release(series) else {
    throw AnalyzerTestError("no \(series) pin in \(KernelLock.path)")
  }
  let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  let file = tests.appendingPathComponent("KscopeLayoutTests/Recorded/\(release).json")
  return try KernelLayout(isfBytes: [UInt8](try Data(contentsOf: file)))
}

struct AnalyzerTestError: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}

/// A little-endian memory image under construction.
struct ImageBuilder {
  var bytes: [UInt8]
  init(size: Int) { bytes = [UInt8](repeating: 0, count: size) }
  mutating func put64(_ at: UInt64, _ v: UInt64) {
    for i in 0..<8 { bytes[Int(at) + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
  }
  mutating func put32(_ at: UInt64, _ v: UInt32) {
    for i in 0..<4 { bytes[Int(at) + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
  }
  mutating func put(_ at: UInt64, _ b: [UInt8]) {
    for (i, x) in b.enumerated() { bytes[Int(at) + i] = x }
  }
  /// An ELF note named VMCOREINFO (type 0) at `at` whose text is `text`, as the kernel
  /// lays out vmcoreinfo_note.
  mutating func putVMCoreInfoNote(_ at: UInt64, _ text: String) {
    let body = Array(text.utf8)
    put32(at, 11)  // name size, "VMCOREINFO" and its NUL
    put32(at + 4, UInt32(body.count))
    put32(at + 8, 0)
    put(at + 12, Array("VMCOREINFO".utf8) + [0])
    put(at + 24, body)
  }
  var memory: ByteMemory { ByteMemory(bytes: bytes) }
}
