import KscopeDebugInfo
import KscopeLayout
import KscopeOS

// kscope-bench layout [--vmlinux PATH] [--runs N] [--kscope PATH]
//
// Times the real `kscope layout extract VMLINUX -o FILE` (the release kscope beside this
// binary, or --kscope PATH) and `pahole -F dwarf -C <the same structs> VMLINUX` the same way:
// each as a child process, one untimed run first (both then read a warm page cache), then N
// timed runs; the median wall time from spawn to reap, and the command's peak RSS (GNU time).

enum LayoutBench {
  struct Measurement {
    var seconds: Double
    var maxRSSKiB: Int
    var userSeconds: Double
    var systemSeconds: Double
  }

  static func run(_ args: [String]) throws {
    var vmlinux = "\(cacheRoot())/kernels/6.1/vmlinux"
    var runs = 5
    var kscope: String? = ColorMapBench.kscopeBinary()
    var i = 0
    while i < args.count {
      let value = i + 1 < args.count ? args[i + 1] : ""
      switch args[i] {
      case "--vmlinux": vmlinux = value
      case "--runs": runs = max(1, Int(value) ?? runs)
      case "--kscope": kscope = value
      default:
        throw BenchError("usage: kscope-bench layout [--vmlinux PATH] [--runs N] [--kscope PATH]")
      }
      i += 2
    }
    guard Files.isReadable(vmlinux) else {
      throw BenchError("no vmlinux at \(vmlinux): run host/setup.sh")
    }
    guard let kscope else {
      throw BenchError("no kscope beside kscope-bench: swift build -c release first, or --kscope PATH")
    }
    // One extraction in this process first: it checks the file and names what it read.
    let (layout, statistics) = try LayoutExtractor.extractWithStatistics(vmlinux: vmlinux)
    let structs = LayoutRequest.default.types
    let output = "/tmp/kscope-bench-layout-\(ProcessUsage.id).json"
    defer { try? Files.remove(output) }

    let extractCommand = [kscope, "layout", "extract", vmlinux, "-o", output]
    let paholeCommand = [
      "/usr/bin/pahole", "-F", "dwarf", "-C", structs.joined(separator: ","), vmlinux,
    ]
    var ours: [Measurement] = []
    var theirs: [Measurement] = []
    _ = try measure(extractCommand)
    _ = try measure(paholeCommand)
    // Alternated, so a burst of load on the shared machine hits both sides alike.
    for _ in 0..<runs {
      ours.append(try measure(extractCommand))
      theirs.append(try measure(paholeCommand))
    }

    print("layout benchmark: \(vmlinux), one untimed run each, then median of \(runs) runs each (child processes)")
    print(
      "  kernel \(layout.release ?? "?"), \(structs.count) structs requested, \(layout.userTypes.count) recorded, \(layout.symbols.count) symbols"
    )
    print("  compilation units read before all were found: \(statistics.compilationUnitsScanned)")
    report("kscope layout extract", ours, command: extractCommand)
    report("pahole -F dwarf -C (same structs)", theirs, command: paholeCommand)
    let target =
      ours.map(\.seconds).median <= 0.15 && (ours.map(\.maxRSSKiB).max() ?? 0) <= 80 * 1024
    print("  target (0.15 s, 80 MiB): \(target ? "met" : "NOT met")")
  }

  static func report(_ name: String, _ runs: [Measurement], command: [String]) {
    let seconds = runs.map(\.seconds)
    let rss = runs.map(\.maxRSSKiB)
    let mib = Double(rss.max() ?? 0) / 1024
    print(
      "  \(name): median \(format(seconds.median)) s (min \(format(seconds.min() ?? 0)), max \(format(seconds.max() ?? 0)), \(runs.count) runs), peak RSS \(format(mib, digits: 1)) MiB"
    )
    print("    \(command.joined(separator: " "))")
  }

  /// Runs a command to completion under GNU time (KscopeOS's ChildProcess.measured): wall time
  /// from spawn to reap (time's own start adds ~1 ms), the command's own peak RSS (a plain
  /// posix_spawn would count this process's peak into the child's).
  static func measure(_ command: [String]) throws -> Measurement {
    let child = try ChildProcess.measured(command)
    guard child.succeeded else {
      throw DebugInfoError.cannotOpen(
        path: command[0],
        reason: "exited with status \(child.exitStatus ?? -1) (signal \(child.signal ?? 0)) running \(command.joined(separator: " "))")
    }
    return Measurement(
      seconds: child.seconds, maxRSSKiB: child.maxRSSKiB, userSeconds: child.userSeconds,
      systemSeconds: child.systemSeconds)
  }

  static func selfPath() -> String { ProcessUsage.executablePath() }

  static func cacheRoot() -> String { ProcessUsage.environment("KSCOPE_CACHE") ?? "/var/cache/kscope" }

  static func format(_ value: Double, digits: Int = 3) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    let decimals = text.split(separator: ".").last?.count ?? 0
    if text.contains(".") && decimals < digits {
      text += String(repeating: "0", count: digits - decimals)
    }
    return text
  }
}

extension Array where Element == Double {
  var median: Double {
    guard !isEmpty else { return 0 }
    let s = sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
  }
}
