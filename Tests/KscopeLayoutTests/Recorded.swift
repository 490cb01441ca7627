import Foundation
import KscopeDebugInfo
import KscopeLayout

/// The layouts recorded from Debian's cloud kernels (see Recorded/README.md), by release.
enum Recorded {
  /// The releases pinned in host/kernels.lock: the ones the tests run against.
  static let release61 = KernelLock.release("6.1")
  static let release612 = KernelLock.release("6.12")

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

/// host/kernels.lock, read from the source tree: "series release debian-version sha sha".
enum KernelLock {
  static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../host/kernels.lock").standardized.path

  static func release(_ series: String) -> String {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
      if fields.count == 5, fields[0] == series { return String(fields[1]) }
    }
    return "no \(series) pin in \(path)"
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
