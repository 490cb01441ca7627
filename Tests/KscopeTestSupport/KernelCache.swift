import Foundation
import Testing

/// The guest kernels host/setup.sh caches ($KSCOPE_CACHE, default /var/cache/kscope).
public enum KernelCache {
  public static var root: String {
    let env = ProcessInfo.processInfo.environment["KSCOPE_CACHE"]
    return env?.isEmpty == false ? env! : "/var/cache/kscope"
  }
  public static func directory(_ series: String, root: String = root) -> String {
    "\(root)/kernels/\(series)"
  }
  public static func vmlinux(_ series: String, root: String = root) -> String {
    "\(directory(series, root: root))/vmlinux"
  }

  /// The cached release of a series; when the kernel is missing, a test failure (never a
  /// silent skip) saying how to get it.
  public static func release(_ series: String, root: String = root) -> String? {
    let path = vmlinux(series, root: root)
    guard FileManager.default.fileExists(atPath: path),
      let version = try? String(contentsOfFile: "\(directory(series, root: root))/version", encoding: .utf8)
    else {
      Issue.record("no cached \(series) kernel at \(path): run host/setup.sh (or set KSCOPE_CACHE)")
      return nil
    }
    return version.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// An exact release the pin does not cover, fetched with host/fetch-kernels.sh when its
  /// vmlinux is not cached.
  public static func fetchIfMissing(_ release: String) throws {
    guard !FileManager.default.fileExists(atPath: vmlinux(release)) else { return }
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("host/fetch-kernels.sh").path
    let r = try runProgram(script, [release])
    #expect(r.status == 0, "host/fetch-kernels.sh \(release) failed: \(r.stderr.suffix(500))")
  }
}
