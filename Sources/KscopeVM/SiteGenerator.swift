import Foundation
import KscopeCore

/// The web workload's static site: several hundred files in 20 directories, sizes spread
/// log-uniformly from 1 KiB to 512 KiB (about 30 MiB in total), so the guest's page cache holds
/// many files of different sizes, as a real web server's does.
public enum SiteGenerator {
  public static let fileCount = 400

  /// (relative path, size) of every file, deterministic.
  public static func plan() -> [(path: String, size: Int)] {
    var rng = SplitMix64(seed: 0x6b73_636f_7065)
    return (0..<fileCount).map { i in
      let exponent = Double(rng.next() % 1_000_000) / 1_000_000 * 9  // 2^0 .. 2^9 KiB
      let size = Int(1024 * pow(2, exponent))
      return (String(format: "d%02d/page-%03d.html", i % 20, i), size)
    }
  }

  /// Writes the files under `dir` and a listing ("path size" per line, paths as served:
  /// /site/...) to `listing`.
  public static func generate(into dir: String, listing: String) throws {
    // A pool of text; each file is its own header plus slices of the pool chosen by the PRNG, so
    // files differ from each other without generating every byte one at a time.
    let words = [
      "elastic", "cloud", "clone", "page", "cache", "kernel", "color", "memory", "frame", "guest",
      "parent", "lazy", "fetch", "prefetch", "working", "set", "server", "request", "query",
      "state",
    ]
    var rng = SplitMix64(seed: 42)
    var pool = [UInt8]()
    while pool.count < 1 << 16 {
      pool += Array(words[rng.below(words.count)].utf8)
      pool.append(rng.below(12) == 0 ? 0x0a : 0x20)
    }
    var lines: [String] = []
    for (path, size) in plan() {
      let full = dir + "/" + path
      try FileManager.default.createDirectory(
        atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      var body = [UInt8]("<html><head><title>\(path)</title></head><body><pre>\n".utf8)
      body.reserveCapacity(size)
      while body.count < size {
        let start = rng.below(pool.count - 4096)
        let n = min(size - body.count, 512 + rng.below(3584))
        body += pool[start..<(start + n)]
      }
      try Data(body).write(to: URL(fileURLWithPath: full))
      lines.append("/site/\(path) \(size)")
    }
    try (lines.joined(separator: "\n") + "\n").write(
      toFile: listing, atomically: true, encoding: .utf8)
  }
}
