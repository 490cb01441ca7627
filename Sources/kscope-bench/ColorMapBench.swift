import Foundation
import KscopeCore
import KscopeMaps
import KscopeOS

/// `kscope-bench colormap [--frames N] [--runs N] [--dir DIR] [--map FILE]`
///
/// Write, open and query color maps, median of several runs: a synthetic "typical" map of N
/// frames (default 4 Mi: a 16 GiB guest; runs of 1-300 frames of weighted random colors,
/// page-cache extents; seeded, so every run builds the same map), a synthetic worst case (a
/// different color every frame) and, with --map, a real map from `kscope color`. The floors,
/// measured in the same run: reading the file's bytes through the same call `open` uses
/// (`Files.read`), and that plus the checksum. With the release `kscope` binary beside this
/// one, also the wall time of whole `kscope map` commands and of `kscope colors` (start-up
/// only).
enum ColorMapBench {
  static func run(_ args: [String]) throws {
    var frames = 4 << 20
    var runs = 5
    var dir = "/dev/shm"
    var realMap: String? = nil
    var i = 0
    while i < args.count {
      let value = i + 1 < args.count ? args[i + 1] : ""
      switch args[i] {
      case "--frames": frames = Int(value) ?? frames
      case "--runs": runs = max(1, Int(value) ?? runs)
      case "--dir": dir = value
      case "--map": realMap = value
      default: throw BenchError("unknown option \(args[i]) (options: --frames N --runs N --dir DIR --map FILE)")
      }
      i += 2
    }
    print("color map benchmark: \(frames) frames (\(frames / 256) MiB of guest RAM), median of \(runs) runs")
    var maps = [("synthetic typical", typicalMap(frames)), ("synthetic worst case", worstMap(frames))]
    if let realMap { maps.append(("real map \(realMap)", try ColorMapFile.open(realMap))) }
    for (label, map) in maps {
      try measure(label: label, map: map, runs: runs, dir: dir)
    }
  }

  static func measure(label: String, map: ColorMap, runs: Int, dir: String) throws {
    let path = "\(dir)/kscope-bench-\(ProcessUsage.id).kcm"
    defer { try? Files.remove(path) }
    var t: [String: [Double]] = [:]
    var bytes = 0
    var sink: UInt64 = 0
    for _ in 0..<runs {
      t["encode + atomic write", default: []].append(
        try time { bytes = try ColorMapFile.write(map, to: path) })
      // One untimed read first: the first large allocation after the write pays page faults
      // that the later ones (the floors and open alike) do not.
      sink &+= UInt64(try readAll(path).count)
      t["read bytes (floor)", default: []].append(try time { sink &+= UInt64(try readAll(path).count) })
      t["read + checksum (floor)", default: []].append(
        try time { sink &+= XXH64.hash(try readAll(path)) })
      var opened: ColorMap? = nil
      t["open + validate", default: []].append(try time { opened = try ColorMapFile.open(path) })
      let m = opened!
      let n = m.frameCount
      let someInode = m.extents.first?.file?.inode ?? 3
      t["query --pfn", default: []].append(
        try time { sink &+= UInt64(m.query(ColorMapQuery(range: (n / 2)..<(n / 2 + 1))).totalRuns) })
      t["query --range (1 GiB)", default: []].append(
        try time { sink &+= m.query(ColorMapQuery(range: (n / 3)..<(n / 3 + 262_144))).totalFrames })
      t["query --color page-cache", default: []].append(
        try time { sink &+= m.query(ColorMapQuery(color: .pageCache), limit: 1000).totalFrames })
      t["query --inode", default: []].append(
        try time { sink &+= m.query(ColorMapQuery(inode: someInode), limit: 1000).totalFrames })
      t["diff (vs itself)", default: []].append(try time { sink &+= m.diff(to: m).changedFrames })
      if let kscope = kscopeBinary() {
        t["CLI: kscope map info", default: []].append(try time { try runQuiet(kscope, ["map", "info", path]) })
        t["CLI: kscope map query --pfn", default: []].append(
          try time { try runQuiet(kscope, ["map", "query", path, "--pfn", "\(n / 2)"]) })
        t["CLI: kscope map query --color", default: []].append(
          try time { try runQuiet(kscope, ["map", "query", path, "--color", "page-cache"]) })
        t["CLI: kscope colors", default: []].append(try time { try runQuiet(kscope, ["colors"]) })
      }
    }
    print("")
    print("\(label): \(map.runs.count) runs, \(map.extents.count) extents, file \(bytes) bytes"
      + " (\(String(format: "%.2f", Double(bytes) / Double(map.frameCount))) bytes/frame)")
    let order = [
      "encode + atomic write", "read bytes (floor)", "read + checksum (floor)", "open + validate",
      "query --pfn", "query --range (1 GiB)", "query --color page-cache", "query --inode",
      "diff (vs itself)", "CLI: kscope map info", "CLI: kscope map query --pfn",
      "CLI: kscope map query --color", "CLI: kscope colors",
    ]
    for name in order {
      guard let samples = t[name] else { continue }
      print("  \(name.padding(toLength: 30, withPad: " ", startingAt: 0)) \(String(format: "%9.3f", median(samples) * 1000)) ms")
    }
    if sink == 42 { print("") }  // keeps the work observable
  }

  /// Runs of 1-300 frames of weighted colors, a page-cache extent per page-cache run.
  static func typicalMap(_ frames: Int) -> ColorMap {
    var g = SplitMix64(seed: 42)
    let palette: [Color] = [.free, .free, .free, .pageCache, .pageCache, .userData, .kernelHeap, .kernelOther, .pageTable, .zero]
    var entries = [UInt16]()
    entries.reserveCapacity(frames)
    var extents: [AttributeExtent] = []
    var index: UInt64 = 0
    while entries.count < frames {
      let c = palette[Int(g.next() % UInt64(palette.count))]
      let len = min(frames - entries.count, 1 + Int(g.next() % 300))
      if c == .pageCache {
        extents.append(
          AttributeExtent(
            start: UInt64(entries.count), count: UInt64(len),
            file: FileIdentity(device: 0x0080_0001, inode: g.next() % 2000, index: index),
            path: "/data/file\(g.next() % 500)"))
        index += UInt64(len)
      }
      entries += repeatElement(FrameEntry(c, g.next() % 4 == 0 ? [.mapped] : []).rawValue, count: len)
    }
    return ColorMap(header: ColorMapHeader(sources: [.hostIntrospection], created: 0), entries: entries, extents: extents)
  }

  /// A different color on every frame: as many runs as frames.
  static func worstMap(_ frames: Int) -> ColorMap {
    let entries = (0..<frames).map { FrameEntry(Color(rawValue: UInt8(1 + $0 % 11))!).rawValue }
    return ColorMap(header: ColorMapHeader(created: 0), entries: entries)
  }

  static func time(_ body: () throws -> Void) throws -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
  }

  static func median(_ v: [Double]) -> Double {
    let s = v.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
  }

  /// The file's bytes through the same call `ColorMapFile.open` reads them with.
  static func readAll(_ path: String) throws -> [UInt8] {
    try Files.read(path, limit: 1 << 36)
  }

  static func kscopeBinary() -> String? {
    let p = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
      .appendingPathComponent("kscope").path
    return FileManager.default.isExecutableFile(atPath: p) ? p : nil
  }

  static func runQuiet(_ exe: String, _ args: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw BenchError("kscope \(args.joined(separator: " ")) failed") }
  }
}

struct BenchError: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}
