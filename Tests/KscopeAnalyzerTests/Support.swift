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
  var memory: ByteMemory { ByteMemory(bytes: bytes) }
}
