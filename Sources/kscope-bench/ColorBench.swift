import Foundation
import KscopeOS
import KscopeAnalyzer
import KscopeColoring
import KscopeCore
import KscopeDebugInfo
import KscopeLayout
import KscopeSnapshot

/// `kscope-bench color SNAPSHOT_DIR [--runs N] [--drgn]`
/// `kscope-bench color --digest RAM_FILE [--runs N]`
///
/// With --digest, only the RAM content digest: each algorithm on a fresh mapping of the file
/// (as a fresh `kscope color` process maps it), median of N runs.
///
/// Colors a real guest snapshot (from `kscope vm snapshot`) in this process (release build):
/// the layout is extracted once (timed, "setup"), one untimed analysis warms the RAM file's
/// pages, then N timed analyses give the median of each phase, and the struct-page walk and
/// the whole analysis in GiB of guest RAM per second. With the release `kscope` beside this
/// binary, the whole `kscope color SNAPSHOT` command is also timed as a child process (one
/// untimed run, which also fills the layout cache, then N runs, median). With --drgn, drgn
/// colors the same snapshot with the same rules (host/bench/drgn_color.py) the same way: its
/// setup once, one untimed walk, N timed walks, median.
enum ColorBench {
  static func run(_ args: [String]) throws {
    if args.first == "--digest" {
      try digest(Array(args.dropFirst()))
      return
    }
    guard let snapshot = args.first, !snapshot.hasPrefix("-") else {
      throw BenchError("usage: kscope-bench color SNAPSHOT_DIR [--runs N] [--drgn]")
    }
    var runs = 5
    var drgn = false
    var i = 1
    while i < args.count {
      switch args[i] {
      case "--runs":
        runs = max(1, Int(i + 1 < args.count ? args[i + 1] : "") ?? runs)
        i += 1
      case "--drgn": drgn = true
      default: throw BenchError("unknown option \(args[i])")
      }
      i += 1
    }
    // The same entry point as `kscope color` (Coloring.color), with the layout extracted and
    // validated once outside the timing, no hints and no digest: what is timed is the analysis.
    let input: ColoringInput
    do { input = try ColoringInput.open(snapshot) } catch { throw BenchError("\(error)") }
    guard let kernel = input.kernel else { throw BenchError("\(snapshot): not a kscope snapshot directory") }
    let vmlinux = kernel.directory + "/vmlinux"
    let setupStart = DispatchTime.now().uptimeNanoseconds
    let layout = try ValidatedLayout(try LayoutExtractor.extract(vmlinux: vmlinux), origin: vmlinux)
    let setup = Double(DispatchTime.now().uptimeNanoseconds - setupStart) / 1e9
    let options = ColoringOptions(hints: .ignored, digest: false)
    let ramBytes = Double(input.regions.reduce(0) { $0 + $1.size })
    let gib = ramBytes / Double(1 << 30)
    // One untimed run first, so every timed run reads the RAM file from memory, as a live
    // guest's RAM is (drgn gets the same warm-up below).
    _ = try Coloring.color(input, layout: layout, options: options)

    var phases: [String: [Double]] = [:]
    var totals: [Double] = []
    var last: Analysis? = nil
    for _ in 0..<runs {
      let t0 = DispatchTime.now().uptimeNanoseconds
      let a = try Coloring.color(input, layout: layout, options: options).analysis
      totals.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
      for (name, s) in a.phases { phases[name, default: []].append(s) }
      last = a
    }
    let pad = { (s: String) in s.padding(toLength: 24, withPad: " ", startingAt: 0) }
    print("coloring \(snapshot): \(String(format: "%.2f", gib)) GiB guest RAM, kernel \(last?.map.header.kernelRelease ?? "?")")
    print("kscope (in this process): setup (layout from DWARF and its validation, once) \(String(format: "%.3f", setup)) s; then one untimed run, median of \(runs) warm runs:")
    for (name, _) in last?.phases ?? [] {
      print("  \(pad(name)) \(String(format: "%8.2f", ColorMapBench.median(phases[name]!) * 1000)) ms")
    }
    let walk = ColorMapBench.median(phases["walk struct pages"] ?? [1])
    let total = ColorMapBench.median(totals)
    print("  \(pad("total")) \(String(format: "%8.2f", total * 1000)) ms")
    print("  struct page walk + rules: \(String(format: "%.1f", gib / walk)) GiB/s; whole analysis: \(String(format: "%.1f", gib / total)) GiB/s")
    if let m = last?.map {
      print("  colors: " + Color.allCases.filter { m.count(of: $0) > 0 }.map { "\($0.name) \(m.count(of: $0))" }.joined(separator: ", "))
    }

    if let kscope = ColorMapBench.kscopeBinary() {
      let out = "/dev/shm/kscope-bench-color-\(ProcessUsage.id).kcm"
      defer { try? Files.remove(out) }
      let command = [kscope, "color", snapshot, "-o", out]
      _ = try LayoutBench.measure(command)
      var wall: [Double] = []
      for _ in 0..<runs { wall.append(try LayoutBench.measure(command).seconds) }
      print("whole command, a child process (one untimed run, then median of \(runs)): \(String(format: "%.3f", wall.median)) s")
      print("  \(command.joined(separator: " "))")
    }

    if drgn, let a = last {
      let info = NSTemporaryDirectory() + "kscope-vmcoreinfo-\(ProcessUsage.id)"
      defer { try? FileManager.default.removeItem(atPath: info) }
      try a.location.vmcoreinfo.values.map { "\($0.key)=\($0.value)\n" }.joined().write(toFile: info, atomically: true, encoding: .utf8)
      let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("host/bench/drgn_color.py").path
      let p = Process()
      p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      p.arguments = ["python3", script, snapshot, vmlinux, info, String(runs)]
      let out = Pipe()
      p.standardOutput = out
      try p.run()
      let data = out.fileHandleForReading.readDataToEndOfFile()
      p.waitUntilExit()
      guard p.terminationStatus == 0, let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw BenchError("drgn comparison failed (pip install drgn==0.3.0)")
      }
      let drgnSetup = (r["setup_seconds"] as? Double) ?? 0
      let walks = (r["walk_seconds"] as? [Double]) ?? []
      let drgnWalk = walks.median
      print("drgn 0.3.0 (host/bench/drgn_color.py, same snapshot, same rules): setup (debug info, once) \(String(format: "%.3f", drgnSetup)) s;"
        + " then one untimed walk, median of \(walks.count) warm walks: \(String(format: "%.3f", drgnWalk)) s (\(String(format: "%.2f", gib / drgnWalk)) GiB/s)")
      let colors = (r["colors"] as? [String: Int]) ?? [:]
      print("  colors: " + colors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
      if let m = last?.map {
        // Both sides run the same struct page rules, so their counts must agree, or the
        // comparison is not fair. Only kscope's later passes differ: the process walk turns
        // page-cache frames mapped executable into user-code, and frames without a struct page
        // (which drgn does not visit) are reserved.
        func ours(_ c: Color) -> UInt64 { c == .pageCache ? m.count(of: .pageCache) + m.count(of: .userCode) : m.count(of: c) }
        let differ = Color.allCases.filter { c in
          c != .userCode && c != .reserved && UInt64(colors[c.name] ?? 0) != ours(c)
        }
        print("  counts equal to kscope's (page-cache with user-code; reserved not compared): \(differ.isEmpty ? "yes" : "NO: " + differ.map { "\($0.name) \(ours($0)) vs \(colors[$0.name] ?? 0)" }.joined(separator: ", "))")
      }
    }
  }

  static func digest(_ args: [String]) throws {
    guard let path = args.first else { throw BenchError("usage: kscope-bench color --digest RAM_FILE [--runs N]") }
    let runs = args.count >= 3 && args[1] == "--runs" ? max(1, Int(args[2]) ?? 5) : 5
    let probe = try RAMImage(path: path)
    let data = try probe.file.dataExtents().reduce(0) { $0 + $1.count }
    print("digest of \(path): \(probe.file.size >> 20) MiB, \(data >> 20) MiB of data extents; median of \(runs) runs, each on a fresh mapping")
    let cases: [(String, (RAMImage) throws -> ImageDigest)] = [
      ("xxh64-blocks (algorithm 2, through the mapping, 1 thread)", { try $0.contentDigest(algorithm: .xxh64NonZeroBlocks) }),
      ("xxh3-tree (algorithm 3, pread, 1 thread)", { try $0.digestJob().finish() }),
      ("xxh3-tree (algorithm 3, pread, 2 threads)", { try $0.contentDigest(algorithm: .xxh3BlockTree) }),
    ]
    for (name, body) in cases {
      var times: [Double] = []
      var value = ImageDigest.none
      for _ in 0..<runs {
        let ram = try RAMImage(path: path)
        let t0 = MonotonicClock.seconds()
        value = try body(ram)
        times.append(MonotonicClock.seconds() - t0)
      }
      let m = ColorMapBench.median(times)
      print("  \(name): \(String(format: "%.4f", m)) s (\(String(format: "%.4f", times.min() ?? 0))-\(String(format: "%.4f", times.max() ?? 0))), \(String(format: "%.2f", Double(data) / m / 1e9)) GB/s of data; \(value.text)")
    }
  }
}
