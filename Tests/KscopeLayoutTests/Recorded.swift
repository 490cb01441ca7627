import Foundation
import KscopeDebugInfo
import KscopeLayout
import KscopeTestSupport

/// The layouts recorded from Debian's cloud kernels (see Recorded/README.md), by release.
enum Recorded {
  /// The releases pinned in host/kernels.lock: the ones the tests run against.
  static let release61 = KernelLock.release("6.1") ?? "no 6.1 pin in \(KernelLock.path)"
  static let release612 = KernelLock.release("6.12") ?? "no 6.12 pin in \(KernelLock.path)"

  static var directory: String {
    if let url = Bundle.module.url(forResource: "Recorded", withExtension: nil) { return url.path }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "Recorded"
    ).path
  }

  /// Releases with a recorded layout (file names without `.json`).
  static var releases: [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
  }

  static func path(_ release: String) -> String { "\(directory)/\(release).json" }

  static func layout(_ release: String) throws -> KernelLayout {
    try LayoutFile.read(path(release))
  }

  static func text(_ release: String) throws -> String {
    try String(contentsOfFile: path(release), encoding: .utf8)
  }
}

/// A scratch directory removed when the test ends.
final class ScratchDirectory {
  let path: String
  init() throws {
    path = NSTemporaryDirectory() + "kscope-layout-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(atPath: path) }

  func write(_ name: String, _ bytes: [UInt8]) throws -> String {
    let file = "\(path)/\(name)"
    try Data(bytes).write(to: URL(fileURLWithPath: file))
    return file
  }
}
