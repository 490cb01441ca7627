import ArgumentParser
import Foundation
import KscopeMaps
import KscopeVM

/// `kscope workload web|olap --vm NAME`: bounded, reproducible load from the host.
struct WorkloadCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "workload", abstract: "Run a workload against a VM and report speed and a digest.",
    discussion: """
      web: --requests GETs of files picked by a seeded PRNG from the guest's /files.txt; \
      prints requests/s, latency p50/p99 and a SHA-256 digest of everything served.

      olap: runs every query the guest lists (--requests rounds); prints per-query time and a \
      digest of the results, with a progress line on stderr while the queries run. Equal \
      digests mean two VMs answered identically.
      """)
  @Argument(help: "web or olap.") var workload: String
  @Option(name: .long, help: "VM name.") var vm: String
  @Option(
    name: .long,
    help: "web: number of requests (default 200); olap: rounds of all queries (default 1).")
  var requests: Int?
  @Option(name: .long, help: "web: PRNG seed of the request sequence.") var seed: UInt64 = 1
  @OptionGroup var state: StateOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let w = try vmCall { try Workload.parse(workload) }
    switch w {
    case .web:
      let r = try vmCall {
        try state.manager.runWeb(name: vm, requests: requests ?? 200, seed: seed)
      }
      if output.json {
        try printJSON(r.json)
      } else {
        let j = r.json
        print(
          String(
            format:
              "web on %@: %d requests, %.1f MiB in %.2f s: %.1f req/s, p50 %.2f ms, p99 %.2f ms",
            vm, r.requests, Double(r.bytes) / 1_048_576, r.seconds, r.requestsPerSecond,
            j["latency_p50_ms"] as! Double, j["latency_p99_ms"] as! Double))
        print("digest \(r.digest)")
      }
    case .olap:
      // The queries take minutes under TCG: show which one runs.
      let progress = ProgressLine("olap on \(vm)")
      let r = try vmCall {
        try state.manager.runOlap(name: vm, rounds: requests ?? 1) { done, total, next in
          progress.update("query \(done + 1) of \(total) (\(next))")
        }
      }
      progress.finish()
      if output.json {
        try printJSON(r.json)
      } else {
        for q in r.queries {
          print(
            q.name.padding(toLength: 20, withPad: " ", startingAt: 0)
              + String(format: " %8.3f s  %d rows", percentile(q.seconds, 50), q.rows))
        }
        print(String(format: "olap on %@: %.2f s in total", vm, r.seconds))
        print("digest \(r.digest)")
      }
    }
  }
}
