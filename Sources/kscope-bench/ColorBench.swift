import Foundation
import KscopeAnalyzer
import KscopeCore
import KscopeDebugInfo
import KscopeLayout

/// `kscope-bench color SNAPSHOT_DIR [--runs N] [--drgn]`
///
/// Colors a real guest snapshot (from `kscope vm snapshot`) N times in this process (release
/// build) and reports the median of each phase, and the struct-page walk and the whole
/// analysis in GiB of guest RAM per second. With --drgn, the same snapshot is colored by drgn
/// (host/bench/drgn_color.py, same rules) in the same run, for the comparison column.
enum ColorBench {
  static func run(_ args: [String]) throws {
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
    let manifestData = try Data(contentsOf: URL(fileURLWithPath: snapshot + "/manifest.json"))
    guard let manifest = try JSONSerialization.jsonObject(with: manifestData) as? [String: Any],
      let ram = manifest["ram"] as? String, let layoutList = manifest["memory_layout"] as? [[String: Any]],
      let kernel = manifest["kernel"] as? [String: Any], let kernelDir = kernel["directory"] as? String
    else { throw BenchError("\(snapshot): not a kscope snapshot (manifest.json)") }
    let regions = layoutList.compactMap { r -> GuestRAMRegion? in
      guard let s = (r["guest_physical_start"] as? NSNumber)?.uint64Value, let n = (r["size"] as? NSNumber)?.uint64Value,
        let o = (r["file_offset"] as? NSNumber)?.uint64Value
      else { return nil }
      return GuestRAMRegion(start: s, size: n, fileOffset: o)
    }
    let vmlinux = kernelDir + "/vmlinux"
    let layout = try LayoutExtractor.extract(vmlinux: vmlinux)
    let memory = try RAMImage(path: snapshot + "/" + ram, regions: regions)
    let ramBytes = Double(regions.reduce(0) { $0 + $1.size })
    let gib = ramBytes / Double(1 << 30)
    // Touch the file once so every run reads from memory, as a live guest's RAM is.
    _ = try Analyzer.analyze(memory: memory, layout: layout)

    var phases: [String: [Double]] = [:]
    var totals: [Double] = []
    var last: Analysis? = nil
    for _ in 0..<runs {
      let t0 = DispatchTime.now().uptimeNanoseconds
      let a = try Analyzer.analyze(memory: memory, layout: layout)
      totals.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
      for (name, s) in a.phases { phases[name, default: []].append(s) }
      last = a
    }
    print("coloring \(snapshot): \(String(format: "%.2f", gib)) GiB guest RAM, kernel \(last?.map.header.kernelRelease ?? "?"), median of \(runs) runs")
    for (name, _) in last?.phases ?? [] {
      print("  \(name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(String(format: "%8.2f", ColorMapBench.median(phases[name]!) * 1000)) ms")
    }
    let walk = ColorMapBench.median(phases["walk struct pages"] ?? [1])
    let total = ColorMapBench.median(totals)
    print("  \("total".padding(toLength: 22, withPad: " ", startingAt: 0)) \(String(format: "%8.2f", total * 1000)) ms")
    print("  struct page walk + classification: \(String(format: "%.1f", gib / walk)) GiB/s; whole analysis: \(String(format: "%.1f", gib / total)) GiB/s")
    if let m = last?.map {
      print("  colors: " + Color.allCases.filter { m.count(of: $0) > 0 }.map { "\($0.name) \(m.count(of: $0))" }.joined(separator: ", "))
    }

    if drgn, let a = last {
      let info = NSTemporaryDirectory() + "kscope-vmcoreinfo-\(getpid())"
      defer { try? FileManager.default.removeItem(atPath: info) }
      try a.location.vmcoreinfo.values.map { "\($0.key)=\($0.value)\n" }.joined().write(toFile: info, atomically: true, encoding: .utf8)
      let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("host/bench/drgn_color.py").path
      let p = Process()
      p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      p.arguments = ["python3", script, snapshot, vmlinux, info]
      let out = Pipe()
      p.standardOutput = out
      try p.run()
      let data = out.fileHandleForReading.readDataToEndOfFile()
      p.waitUntilExit()
      guard p.terminationStatus == 0, let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw BenchError("drgn comparison failed (pip install drgn==0.3.0)")
      }
      let setup = (r["setup_seconds"] as? Double) ?? 0
      let walkSeconds = (r["walk_seconds"] as? Double) ?? 0
      print("drgn 0.3.0, same snapshot, same rules (one run): setup \(String(format: "%.3f", setup)) s, walk \(String(format: "%.3f", walkSeconds)) s"
        + " (\(String(format: "%.2f", gib / walkSeconds)) GiB/s); colors \(r["colors"] ?? "")")
    }
  }
}
