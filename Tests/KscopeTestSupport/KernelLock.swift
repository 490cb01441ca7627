import Foundation

/// host/kernels.lock, read from the source tree: "series release debian-version sha sha" per
/// line; the releases the tests run against.
public enum KernelLock {
  public static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../host/kernels.lock").standardized.path

  /// The release pinned for `series` ("6.1", "6.12"), nil when there is no such pin.
  public static func release(_ series: String) -> String? {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
      if fields.count == 5, fields[0] == series { return String(fields[1]) }
    }
    return nil
  }
}
