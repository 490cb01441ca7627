import Foundation
import KscopeTestSupport
import Testing

/// A fresh temporary directory, removed by the caller with `cleanup`.
func makeTempDir() throws -> String {
  let path = NSTemporaryDirectory() + "kscope-test-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

func cleanup(_ dir: String) { try? FileManager.default.removeItem(atPath: dir) }

func writeU64s(_ values: [UInt64], to path: String) throws {
  var data = Data()
  for v in values { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
  try data.write(to: URL(fileURLWithPath: path))
}
