import Foundation
import KscopeOS

/// `kscope-bench host [--runs N]`
///
/// This machine's own memory, as the commands see it: the release `kscope color -o FILE`
/// (from /proc/kpageflags and /proc/kpagecount; needs root) and, when the static agent is beside
/// this binary, `kscope-agent --out FILE --once --no-files` (the agent's frame table only). Each
/// a child process: one untimed run, then N runs; medians of wall, user and system time, and the
/// largest peak RSS.
enum HostBench {
  static func run(_ args: [String]) throws {
    var runs = 5
    var i = 0
    while i < args.count {
      let value = i + 1 < args.count ? args[i + 1] : ""
      switch args[i] {
      case "--runs": runs = max(1, Int(value) ?? runs)
      default: throw BenchError("usage: kscope-bench host [--runs N]")
      }
      i += 2
    }
    guard let kscope = ColorMapBench.kscopeBinary() else {
      throw BenchError("no kscope beside kscope-bench: swift build -c release first")
    }
    let dir = URL(fileURLWithPath: kscope).deletingLastPathComponent()
    let out = "/dev/shm/kscope-bench-host-\(ProcessUsage.id)"
    defer {
      try? Files.remove(out + ".kcm")
      try? Files.remove(out + ".hints")
    }
    var commands = [("kscope color (this machine)", [kscope, "color", "-o", out + ".kcm"])]
    let agent = dir.appendingPathComponent("kscope-agent").path
    if FileManager.default.isExecutableFile(atPath: agent) {
      commands.append(("kscope-agent, frame table only", [agent, "--out", out + ".hints", "--once", "--no-files"]))
    }
    print("host benchmark: one untimed run, then median of \(runs) runs, child processes")
    for (name, command) in commands {
      _ = try LayoutBench.measure(command)
      var m: [LayoutBench.Measurement] = []
      for _ in 0..<runs { m.append(try LayoutBench.measure(command)) }
      print(
        "  \(name): wall \(String(format: "%.3f", m.map(\.seconds).median)) s,"
          + " user \(String(format: "%.3f", m.map(\.userSeconds).median)) s,"
          + " system \(String(format: "%.3f", m.map(\.systemSeconds).median)) s,"
          + " peak RSS \(String(format: "%.1f", Double(m.map(\.maxRSSKiB).max() ?? 0) / 1024)) MiB")
      print("    \(command.joined(separator: " "))")
    }
  }
}
