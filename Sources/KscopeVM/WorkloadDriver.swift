import Foundation
import KscopeCore

/// Nearest-rank percentile of `values` (p in 0...100); 0 for an empty list.
public func percentile(_ values: [Double], _ p: Double) -> Double {
  guard !values.isEmpty else { return 0 }
  let sorted = values.sorted()
  let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
  return sorted[min(max(rank, 1), sorted.count) - 1]
}

/// The outcome of a web run. `digest` is SHA-256 over the listing and every (path, status,
/// body) answered, in request order: two VMs serving the same files give the same digest.
public struct WebResult: Sendable {
  public var requests: Int
  public var bytes: Int
  public var seconds: Double
  public var latencies: [Double]
  public var digest: String
  public var requestsPerSecond: Double { seconds > 0 ? Double(requests) / seconds : 0 }

  public var json: [String: Any] {
    [
      "workload": "web", "requests": requests, "bytes": bytes, "seconds": round6(seconds),
      "requests_per_second": round6(requestsPerSecond),
      "latency_p50_ms": round6(percentile(latencies, 50) * 1000),
      "latency_p99_ms": round6(percentile(latencies, 99) * 1000), "digest": digest,
    ]
  }
}

/// The outcome of an OLAP run: per-query wall time as seen from the host (HTTP round trip,
/// CGI, sqlite3) and a digest over every query's name and result text.
public struct OlapResult: Sendable {
  public struct Query: Sendable {
    public var name: String
    public var seconds: [Double]
    public var rows: Int
    public var digest: String
  }
  public var queries: [Query]
  public var seconds: Double
  public var digest: String

  public var json: [String: Any] {
    [
      "workload": "olap", "seconds": round6(seconds), "digest": digest,
      "queries": queries.map {
        [
          "name": $0.name, "seconds": round6(percentile($0.seconds, 50)),
          "runs": $0.seconds.map(round6), "rows": $0.rows, "digest": $0.digest,
        ] as [String: Any]
      },
    ]
  }
}

func round6(_ x: Double) -> Double { (x * 1e6).rounded() / 1e6 }

/// Bounded, reproducible load from the host over the VM's loopback port.
public enum WorkloadDriver {
  /// `requests` GETs of files picked from the guest's /files.txt by a PRNG seeded with `seed`,
  /// one connection per request, sequential. Every answer must be 200 with the listed size.
  public static func web(port: UInt16, requests: Int, seed: UInt64 = 1, timeout: Double = 60)
    throws -> WebResult
  {
    guard requests >= 1, requests <= 1_000_000 else {
      throw VMError.invalidArgument("requests must be 1..1000000")
    }
    let listing = try HTTPClient.get(port: port, path: "/files.txt", timeout: timeout)
    guard listing.status == 200 else {
      throw VMError.guest("/files.txt answered \(listing.status)")
    }
    let files: [(String, Int)] = String(decoding: listing.body, as: UTF8.self)
      .split(separator: "\n").compactMap { line in
        let parts = line.split(separator: " ")
        guard parts.count == 2, let size = Int(parts[1]) else { return nil }
        return (String(parts[0]), size)
      }
    guard !files.isEmpty else { throw VMError.guest("/files.txt lists no files") }
    var digest = SHA256()
    digest.update(listing.body)
    var rng = SplitMix64(seed: seed)
    let popularity = ZipfPicker(count: files.count)
    var latencies: [Double] = []
    var bytes = 0
    let start = Date()
    for _ in 0..<requests {
      let (path, size) = files[popularity.next(&rng)]
      let t = Date()
      let r = try HTTPClient.get(port: port, path: path, timeout: timeout)
      latencies.append(Date().timeIntervalSince(t))
      guard r.status == 200, r.body.count == size else {
        throw VMError.guest(
          "GET \(path): status \(r.status), \(r.body.count) bytes (expected \(size))")
      }
      bytes += r.body.count
      digest.update("\(path) \(r.status) \(r.body.count)\n")
      digest.update(r.body)
    }
    return WebResult(
      requests: requests, bytes: bytes, seconds: Date().timeIntervalSince(start),
      latencies: latencies, digest: digest.hexDigest())
  }

  /// Runs every query the guest lists, `rounds` times in order.
  public static func olap(
    port: UInt16, rounds: Int, timeout: Double = 600,
    progress: (_ done: Int, _ total: Int, _ next: String) -> Void = { _, _, _ in }
  ) throws -> OlapResult {
    guard rounds >= 1, rounds <= 1000 else {
      throw VMError.invalidArgument("rounds must be 1..1000")
    }
    let list = try HTTPClient.get(port: port, path: "/cgi-bin/query?list", timeout: 30)
    guard list.status == 200 else { throw VMError.guest("query list answered \(list.status)") }
    let names = String(decoding: list.body, as: UTF8.self).split(separator: "\n").map(String.init)
    guard !names.isEmpty else { throw VMError.guest("the guest lists no queries") }
    var queries = names.map { OlapResult.Query(name: $0, seconds: [], rows: 0, digest: "") }
    var digest = SHA256()
    let start = Date()
    for round in 0..<rounds {
      for i in queries.indices {
        progress(round * queries.count + i, rounds * queries.count, queries[i].name)
        let t = Date()
        let r = try HTTPClient.get(
          port: port, path: "/cgi-bin/query?\(queries[i].name)", timeout: timeout)
        queries[i].seconds.append(Date().timeIntervalSince(t))
        guard r.status == 200 else {
          throw VMError.guest("query \(queries[i].name): status \(r.status)")
        }
        let text = String(decoding: r.body, as: UTF8.self)
        if text.lowercased().contains("error") || text.isEmpty {
          throw VMError.guest("query \(queries[i].name) failed: \(text.prefix(200))")
        }
        queries[i].rows = text.split(separator: "\n").count
        queries[i].digest = SHA256.hex(r.body)
        digest.update("\(queries[i].name)\n")
        digest.update(r.body)
      }
    }
    return OlapResult(
      queries: queries, seconds: Date().timeIntervalSince(start), digest: digest.hexDigest())
  }
}

extension VMManager {
  public func runWeb(name: String, requests: Int, seed: UInt64 = 1) throws -> WebResult {
    let rec = try record(name)
    guard rec.config.image.workload == .web else {
      throw VMError.invalidArgument(
        "VM '\(name)' runs the \(rec.config.image.workload.rawValue) workload, not web")
    }
    return try WorkloadDriver.web(port: rec.config.hostPort, requests: requests, seed: seed)
  }

  public func runOlap(
    name: String, rounds: Int,
    progress: (_ done: Int, _ total: Int, _ next: String) -> Void = { _, _, _ in }
  ) throws -> OlapResult {
    let rec = try record(name)
    guard rec.config.image.workload == .olap else {
      throw VMError.invalidArgument(
        "VM '\(name)' runs the \(rec.config.image.workload.rawValue) workload, not olap")
    }
    return try WorkloadDriver.olap(port: rec.config.hostPort, rounds: rounds, progress: progress)
  }
}
