import Foundation
import KscopeCore

/// The web workload's static site: files in 20 directories, sizes spread log-uniformly from
/// 1 KiB to 512 KiB (about 82 KiB on average), so the guest's page cache holds many files of
/// different sizes, as a real web server's does. `siteMiB` scales the file count: the default
/// 30 MiB is 400 files (tests); the clone evaluation uses 240 MiB (3,200 files).
public enum SiteGenerator {
  public static let defaultSiteMiB = 30
  /// Files per MiB of site: 400 files for the default 30 MiB.
  public static func fileCount(siteMiB: Int) -> Int { max(1, siteMiB * 400 / 30) }

  /// (relative path, size) of every file, deterministic.
  public static func plan(siteMiB: Int = defaultSiteMiB) -> [(path: String, size: Int)] {
    var rng = SplitMix64(seed: 0x6b73_636f_7065)
    return (0..<fileCount(siteMiB: siteMiB)).map { i in
      let exponent = Double(rng.next() % 1_000_000) / 1_000_000 * 9  // 2^0 .. 2^9 KiB
      let size = Int(1024 * pow(2, exponent))
      return (String(format: "d%02d/page-%04d.html", i % 20, i), size)
    }
  }

  /// Writes the files under `dir` and a listing ("path size" per line, paths as served:
  /// /site/...) to `listing`.
  public static func generate(into dir: String, listing: String, siteMiB: Int = defaultSiteMiB) throws {
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
    for (path, size) in plan(siteMiB: siteMiB) {
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

/// Zipf popularity over n items (rank k is drawn with weight 1/k^s), as requests to real web
/// sites are; which file has which rank is a seeded permutation, so popularity does not follow
/// file order or size. Pure: draws come from the caller's PRNG.
public struct ZipfPicker: Sendable {
  let cumulative: [Double]
  let order: [Int]

  public init(count n: Int, exponent s: Double = 0.9, seed: UInt64 = 0x7a69_7066) {
    precondition(n >= 1)
    var c: [Double] = []
    c.reserveCapacity(n)
    var sum = 0.0
    for k in 1...n {
      sum += 1 / pow(Double(k), s)
      c.append(sum)
    }
    cumulative = c.map { $0 / sum }
    var perm = Array(0..<n)
    var rng = SplitMix64(seed: seed)
    for i in stride(from: n - 1, to: 0, by: -1) { perm.swapAt(i, rng.below(i + 1)) }
    order = perm
  }

  /// The index of the next item requested.
  public func next(_ rng: inout SplitMix64) -> Int {
    let u = Double(rng.next() >> 11) / Double(1 << 53)
    var lo = 0
    var hi = cumulative.count - 1
    while lo < hi {
      let mid = (lo + hi) / 2
      if cumulative[mid] < u { lo = mid + 1 } else { hi = mid }
    }
    return order[lo]
  }
}
