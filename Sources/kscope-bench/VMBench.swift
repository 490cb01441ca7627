// kscope-bench vm: boot, snapshot and eager-clone times of real parent VMs under QEMU, as
// medians over a few runs. Run: swift run -c release kscope-bench vm [--runs 3] [--kernel 6.1]
//   [--workload web|olap] [--olap-size MiB] [--memory 512M] [--state-dir DIR] [--json]
import Foundation
import KscopeOS
import KscopeVM

enum VMBench {
  static func run(_ args: [String]) throws {
    var runs = 3
    var options = StartOptions()
    var stateDir = "/dev/shm/kscope-bench-\(ProcessUsage.id)"
    var json = false
    var i = 0
    func value() throws -> String {
      i += 1
      guard i < args.count else { throw VMError.invalidArgument("\(args[i - 1]) needs a value") }
      return args[i]
    }
    while i < args.count {
      switch args[i] {
      case "--runs":
        guard let n = Int(try value()), n >= 1, n <= 50 else {
          throw VMError.invalidArgument("--runs must be 1..50")
        }
        runs = n
      case "--kernel": options.kernelSeries = try value()
      case "--workload": options.workload = try Workload.parse(try value())
      case "--olap-size":
        guard let n = Int(try value()) else {
          throw VMError.invalidArgument("--olap-size needs MiB")
        }
        options.olapMiB = n
      case "--memory": options.memory = try parseMemorySize(try value())
      case "--state-dir": stateDir = try value()
      case "--json": json = true
      default:
        throw VMError.invalidArgument(
          "usage: kscope-bench vm [--runs N] [--kernel 6.1|6.12] [--workload web|olap] [--olap-size MiB] [--memory 512M] [--state-dir DIR] [--json]"
        )
      }
      i += 1
    }
    let manager = VMManager(stateDir: stateDir)
    defer {
      _ = manager.stopAll()
      try? FileManager.default.removeItem(atPath: stateDir)
    }
    // Build (or find) the image first so that boot times do not include it.
    let t0 = Date()
    _ = try manager.buildImage(options)
    let imageSeconds = Date().timeIntervalSince(t0)

    var boot: [Double] = []
    var snap: [Double] = []
    var device: [Double] = []
    var ramCopy: [Double] = []
    var clone: [Double] = []
    var ramMiB: [Double] = []
    var parentRate: [Double] = []
    var cloneRate: [Double] = []
    for r in 0..<runs {
      var t = Date()
      try manager.start(name: "bench-parent", options: options)
      boot.append(Date().timeIntervalSince(t))
      parentRate.append(try load(manager, "bench-parent", options.workload))

      let dir = stateDir + "/snap-\(r)"
      t = Date()
      let m = try manager.snapshot(name: "bench-parent", to: dir, resume: true)
      snap.append(Date().timeIntervalSince(t))
      device.append(m.deviceStateSeconds)
      ramCopy.append(m.ramCopySeconds)
      ramMiB.append(Double(m.ramBytesCopied) / 1_048_576)

      t = Date()
      try manager.clone(snapshot: dir, name: "bench-clone")
      clone.append(Date().timeIntervalSince(t))
      cloneRate.append(try load(manager, "bench-clone", options.workload))

      try manager.stop(name: "bench-clone")
      try manager.stop(name: "bench-parent")
      try? FileManager.default.removeItem(atPath: dir)
      if !json {
        print(
          String(
            format: "run %d: boot %.2f s, snapshot %.3f s, clone %.2f s", r + 1, boot[r], snap[r],
            clone[r]))
      }
    }
    let unit = options.workload == .web ? "requests/s" : "s for all queries"
    let rows: [(String, Double, String)] = [
      ("boot_to_workload_s", percentile(boot, 50), "start until the workload answers (TCG)"),
      ("snapshot_s", percentile(snap, 50), "pause, device state, RAM copy, manifest"),
      ("snapshot_device_state_s", percentile(device, 50), "migration stream without RAM"),
      ("snapshot_ram_copy_s", percentile(ramCopy, 50), "sparse copy of the RAM file"),
      ("snapshot_ram_written_mib", percentile(ramMiB, 50), "non-zero RAM written"),
      (
        "eager_clone_s", percentile(clone, 50),
        "RAM copy, incoming, cont, until the workload answers"
      ),
      ("parent_workload", percentile(parentRate, 50), unit),
      ("clone_workload", percentile(cloneRate, 50), unit),
    ]
    if json {
      var d: [String: Any] = [
        "runs": runs, "kernel": options.kernelSeries, "workload": options.workload.rawValue,
        "memory_bytes": options.memory, "image_build_s": imageSeconds,
      ]
      for (k, v, _) in rows { d[k] = (v * 1000).rounded() / 1000 }
      let data = try JSONSerialization.data(
        withJSONObject: d, options: [.sortedKeys, .prettyPrinted])
      print(String(decoding: data, as: UTF8.self))
    } else {
      print(
        "kscope-bench vm: kernel \(options.kernelSeries), \(options.workload.rawValue), \(options.memory >> 20) MiB, medians of \(runs) runs (image ready in \(String(format: "%.2f", imageSeconds)) s)"
      )
      for (k, v, what) in rows {
        print(
          k.padding(toLength: 26, withPad: " ", startingAt: 0) + String(format: "%10.3f  ", v)
            + what)
      }
    }
  }

  /// A short load: web requests/s over 100 requests, or olap seconds for one round of queries.
  static func load(_ m: VMManager, _ name: String, _ w: Workload) throws -> Double {
    switch w {
    case .web: return try m.runWeb(name: name, requests: 100).requestsPerSecond
    case .olap: return try m.runOlap(name: name, rounds: 1).seconds
    }
  }
}
