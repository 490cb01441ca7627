import ArgumentParser
import Foundation
import KscopeCore
import KscopeMaps
import KscopeOS

struct MapCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "map",
    abstract: "Describe, query and compare color maps.",
    subcommands: [MapInfo.self, MapQuery.self, MapDiff.self, MapRender.self, MapVerify.self])
}

/// A frame number: decimal or 0x-prefixed hex.
func parseFrame(_ s: String, what: String) throws -> UInt64 {
  let t = s.trimmingCharacters(in: .whitespaces)
  let v = t.hasPrefix("0x") || t.hasPrefix("0X") ? UInt64(t.dropFirst(2), radix: 16) : UInt64(t)
  guard let v else { throw CommandFailure("\(what) '\(s)' is not a frame number (decimal or 0x hex)") }
  return v
}

struct MapInfo: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "info", abstract: "Print a color map's header and pages per color.")

  @Argument(help: "A color map file.") var file: String
  @OptionGroup var out: OutputOptions

  func run() throws {
    let map = try ColorMapFile.open(file)
    let h = map.header
    let fileBytes = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
    if out.json {
      var kernel: [String: Any] = [:]
      kernel["release"] = h.kernelRelease ?? NSNull()
      kernel["build_id"] = h.kernelBuildID ?? NSNull()
      try printJSON([
        "path": file, "version": Int(ColorMapFormat.version), "file_bytes": fileBytes,
        "page_size": h.pageSize, "frames": map.frameCount, "kernel": kernel,
        "image": ["digest": h.image.text, "size": h.image.size],
        "sources": h.sources.names, "created": Describe.utc(h.created),
        "runs": map.runs.count, "extents": map.extents.count,
        "colors": Describe.colorCounts(map),
        "metadata": Dictionary(h.metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }),
      ])
      return
    }
    // Keys in one column, wide enough for the longest metadata key ("source.layout"), and
    // always at least two spaces before the value.
    let width = max(12, (h.metadata.map(\.key.count).max() ?? 0) + 2)
    let pad = { (s: String) in Describe.pad(s, width) }
    print(pad("color map") + "\(Describe.safe(file)) (format \(ColorMapFormat.version), \(fileBytes) bytes)")
    print(
      pad("frames") + "\(map.frameCount) x \(h.pageSize) bytes = "
        + "\(Describe.mib(map.frameCount, pageSize: h.pageSize)) MiB")
    print(pad("kernel") + Describe.safe("\(h.kernelRelease ?? "unknown"), build id \(h.kernelBuildID ?? "unknown")"))
    print(pad("sources") + (h.sources.names.isEmpty ? "none" : h.sources.names.joined(separator: ", ")))
    print(pad("image") + "\(h.image.text) of \(h.image.size) bytes")
    print(pad("created") + Describe.utc(h.created))
    print(pad("index") + "\(plural(map.runs.count, "run")), \(plural(map.extents.count, "attribute extent"))")
    for (k, v) in h.metadata { print(pad(Describe.safe(k)) + Describe.safe(v)) }
    print("")
    for line in Describe.colorTable(map) { print(line) }
  }
}

struct MapQuery: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "query",
    abstract: "Print the runs of frames matching a frame, range, color or file.",
    discussion: """
      Filters combine (they intersect). Without any, every run is listed. A run has one \
      color, one set of flags and, for page cache, one file (device major:minor, inode) at \
      consecutive file offsets. An inode number is unique only on its device: --dev picks \
      one. Frame numbers are printed in hex when --pfn or --range was given in hex.

      Examples:
        kscope map query host.kcm --pfn 0x1000
        kscope map query host.kcm --range 0-1048575 --color free --json
        kscope map query guest.kcm --inode 12 --dev 254:0 --limit 0
      """)

  @Argument(help: "A color map file.") var file: String
  @Option(help: "One frame (decimal or 0x hex).") var pfn: String?
  @Option(help: "Frames A-B, both included (decimal or 0x hex).") var range: String?
  @Option(help: "Only frames of this color (see 'kscope colors').") var color: String?
  @Option(help: "Only page-cache frames of this inode.") var inode: UInt64?
  @Option(help: "Only page-cache frames of files on this device (major:minor, e.g. 254:0).")
  var dev: String?
  @Option(help: "At most this many runs (0: all).") var limit = 1000
  @OptionGroup var out: OutputOptions

  func validate() throws {
    if pfn != nil && range != nil { throw ValidationError("use --pfn or --range, not both") }
    if limit < 0 { throw ValidationError("--limit must be 0 (all) or more") }
    if let color, Color(name: color) == nil {
      throw ValidationError(
        "unknown color '\(color)' (colors: \(Color.allCases.map(\.name).joined(separator: ", ")))")
    }
    if let dev, parseDevice(dev) == nil {
      throw ValidationError("--dev '\(dev)' is not major:minor (e.g. 254:0)")
    }
  }

  func run() throws {
    let map = try ColorMapFile.open(file)
    var q = ColorMapQuery(
      color: color.flatMap(Color.init(name:)), inode: inode, device: dev.flatMap(parseDevice))
    if let pfn {
      let f = try parseFrame(pfn, what: "--pfn")
      guard f < map.frameCount else {
        throw CommandFailure("frame \(pfn) is past the end of \(file) (\(map.frameCount) frames)")
      }
      q.range = f..<(f + 1)
    }
    if let range {
      let parts = range.split(separator: "-", omittingEmptySubsequences: false)
      guard parts.count == 2 else { throw CommandFailure("--range '\(range)' is not A-B") }
      let a = try parseFrame(String(parts[0]), what: "--range start")
      let b = try parseFrame(String(parts[1]), what: "--range end")
      guard a <= b, b < UInt64.max else { throw CommandFailure("--range \(range): start is after end") }
      guard a < map.frameCount else {
        throw CommandFailure("--range \(range) starts past the end of \(file) (\(map.frameCount) frames)")
      }
      q.range = a..<(b + 1)
    }
    let result = map.query(q, limit: limit)
    let pageSize = UInt64(map.header.pageSize)
    if out.json {
      try printJSON([
        "runs": result.runs.map { MapQuery.runJSON($0, pageSize: pageSize) },
        "total_runs": result.totalRuns, "total_frames": result.totalFrames,
        "truncated": result.truncated,
      ])
      return
    }
    // Echo frames the way they were asked for.
    let hex = [pfn, range].contains { $0?.lowercased().contains("0x") == true }
    for r in result.runs { print(MapQuery.runText(r, pageSize: pageSize, hex: hex)) }
    if result.truncated {
      print("... \(plural(result.totalRuns - result.runs.count, "more run")) (--limit 0 for all)")
    }
    print("\(plural(result.totalRuns, "run")), \(plural(result.totalFrames, "frame"))")
  }

  static func runJSON(_ r: QueryRun, pageSize: UInt64) -> [String: Any] {
    var d: [String: Any] = [
      "start": r.start, "count": r.count, "color": r.color.name,
      "address": hexAddress(r.start &* pageSize), "flags": (r.flags ?? []).names,
    ]
    if let a = r.attributes {
      if let f = a.file {
        d["device"] = deviceText(f.device)
        d["inode"] = f.inode
        d["index"] = f.index
        d["offset"] = f.index &* pageSize
      }
      if let p = a.path { d["path"] = p }
      if let o = a.owner { d["pid"] = o }
    }
    return d
  }

  static func runText(_ r: QueryRun, pageSize: UInt64, hex: Bool = false) -> String {
    let start = hex ? "0x" + String(r.start, radix: 16) : String(r.start)
    var s = "\(Describe.pad(start, 10, right: true)) +\(Describe.pad(String(r.count), 9)) \(r.color.name)"
    if let a = r.attributes {
      if let f = a.file {
        s += "  dev \(deviceText(f.device)) inode \(f.inode) offset \(f.index &* pageSize)"
      }
      if let p = a.path { s += "  \(Describe.safe(p))" }
      if let o = a.owner { s += "  pid \(o)" }
    }
    if let f = r.flags, !f.names.isEmpty { s += "  [\(f.names.joined(separator: ","))]" }
    return s
  }
}

struct MapDiff: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "diff",
    abstract: "Show which frames changed color from map A to map B (say, a parent and its clone).",
    discussion: """
      The two maps must describe the same machine at two moments: the same number of frames, \
      the same kernel (release and build id, where both maps name one) and images of the same \
      size. Otherwise diff refuses with the reason; --force compares anyway and prints each \
      difference as a warning on stderr (and under "warnings" in --json).
      """)

  @Argument(help: "The first color map (e.g. the parent's).") var a: String
  @Argument(help: "The second color map (e.g. the clone's).") var b: String
  @Option(help: "At most this many change runs (0: all).") var limit = 1000
  @Flag(help: "Compare maps of different sizes, kernels or images anyway.") var force = false
  @OptionGroup var out: OutputOptions

  /// Why two maps do not describe the same machine; empty when they plausibly do.
  static func mismatches(_ ma: ColorMap, _ mb: ColorMap, _ a: String, _ b: String) -> [String] {
    var why: [String] = []
    if ma.frameCount != mb.frameCount {
      why.append("frame counts differ (\(a): \(ma.frameCount), \(b): \(mb.frameCount))")
    }
    let (ha, hb) = (ma.header, mb.header)
    if let ra = ha.kernelRelease, let rb = hb.kernelRelease, ra != rb {
      why.append("kernels differ (\(a): \(ra), \(b): \(rb))")
    } else if let ia = ha.kernelBuildID, let ib = hb.kernelBuildID, ia != ib {
      why.append("kernel build ids differ (\(a): \(ia), \(b): \(ib))")
    }
    if ha.image.size != 0, hb.image.size != 0, ha.image.size != hb.image.size {
      why.append("image sizes differ (\(a): \(ha.image.size) bytes, \(b): \(hb.image.size) bytes)")
    }
    return why
  }

  func run() throws {
    guard limit >= 0 else { throw CommandFailure("--limit must be 0 (all) or more") }
    let ma = try ColorMapFile.open(a)
    let mb = try ColorMapFile.open(b)
    guard ma.header.pageSize == mb.header.pageSize else {
      throw CommandFailure(
        "page sizes differ (\(a): \(ma.header.pageSize), \(b): \(mb.header.pageSize))")
    }
    let warnings = MapDiff.mismatches(ma, mb, a, b)
    if !warnings.isEmpty && !force {
      throw CommandFailure(
        "not maps of the same machine: \(warnings.joined(separator: "; ")) (--force to compare anyway)")
    }
    for w in warnings { FileHandle.standardError.write(Data("kscope: warning: \(w)\n".utf8)) }
    let d = ma.diff(to: mb, limit: limit)
    let pairs = d.matrix.sorted { $0.value > $1.value }
    func name(_ c: Color?) -> String { c?.name ?? "absent" }
    if out.json {
      try printJSON([
        "frames_a": ma.frameCount, "frames_b": mb.frameCount,
        "changed_frames": d.changedFrames, "total_changes": d.totalChanges,
        "truncated": d.truncated, "warnings": warnings,
        "changes": d.changes.map {
          ["start": $0.start, "count": $0.count, "from": name($0.from), "to": name($0.to)] as [String: Any]
        },
        "matrix": pairs.map { ["from": name($0.key.from), "to": name($0.key.to), "frames": $0.value] as [String: Any] },
      ])
      return
    }
    print(
      "\(d.changedFrames) of \(plural(max(ma.frameCount, mb.frameCount), "frame")) changed color in \(plural(d.totalChanges, "run"))")
    for (pair, n) in pairs {
      print("  \(Describe.pad(name(pair.from), 13)) -> \(Describe.pad(name(pair.to), 13)) \(Describe.pad(String(n), 10, right: true))")
    }
    if !d.changes.isEmpty { print("") }
    for c in d.changes {
      print("\(Describe.pad(String(c.start), 10, right: true)) +\(Describe.pad(String(c.count), 9)) \(name(c.from)) -> \(name(c.to))")
    }
    if d.truncated { print("... \(plural(d.totalChanges - d.changes.count, "more run")) (--limit 0 for all)") }
  }
}

struct MapVerify: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Compare a color map with the kernel's own page flags (a kpageflags file).",
    discussion: """
      The kpageflags file is the guest's /proc/kpageflags, copied right before the guest was \
      paused. Prints, per class the kernel's flags can name (free, slab, page-table, anon, \
      page-cache, kernel-code, kernel-data, zero, reserved, kernel-other), how many \
      of its frames the map colors alike, how many the map puts in it wrongly (extra), and the \
      full confusion matrix.
      """)

  @Argument(help: "A color map file.") var file: String
  @Option(help: "The kpageflags file to compare with.") var kpageflags: String
  @Option(help: "Fail (exit 1) when any class agrees on less than this fraction.") var require: Double?
  @OptionGroup var out: OutputOptions

  func run() throws {
    let map = try ColorMapFile.open(file)
    // A regular file of at most 8 bytes per frame of a 64 TiB guest: never a FIFO or a device.
    let raw = Data(try Files.read(kpageflags, limit: 1 << 37))
    guard raw.count % 8 == 0, !raw.isEmpty else {
      throw CommandFailure("\(kpageflags): \(raw.count) bytes is not a kpageflags file (8 bytes per frame)")
    }
    let flags = raw.withUnsafeBytes { b in (0..<(raw.count / 8)).map { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) } }
    let cmp = OracleComparison(entries: map.entries, flags: flags)
    if out.json {
      try printJSON([
        "compared_frames": cmp.comparedFrames,
        "classes": cmp.classes.map {
          ["class": $0.oracleClass.rawValue, "frames": $0.frames, "agreeing": $0.agreeing, "extra": $0.extra, "agreement": $0.agreement] as [String: Any]
        },
        "matrix": Dictionary(uniqueKeysWithValues: cmp.matrix.map { k, row in
          (k.rawValue, Dictionary(uniqueKeysWithValues: row.map { ($0.key.name, $0.value) }))
        }),
      ])
    } else {
      print("compared \(cmp.comparedFrames) frames with \(kpageflags)")
      print(Describe.pad("kernel class", 14) + Describe.pad("frames", 10, right: true) + Describe.pad("agree", 10, right: true) + Describe.pad("%", 9, right: true) + Describe.pad("extra", 8, right: true))
      for c in cmp.classes {
        print(Describe.pad(c.oracleClass.rawValue, 14) + Describe.pad(String(c.frames), 10, right: true) + Describe.pad(String(c.agreeing), 10, right: true) + Describe.pad(Describe.formatFixed(c.agreement * 100, digits: 2), 9, right: true) + Describe.pad(String(c.extra), 8, right: true))
      }
      print("")
      print("confusion (kernel class -> our colors):")
      for k in OracleClass.allCases {
        guard let row = cmp.matrix[k] else { continue }
        print("  " + Describe.pad(k.rawValue, 12) + row.sorted { $0.value > $1.value }.map { "\($0.key.name) \($0.value)" }.joined(separator: ", "))
      }
    }
    if let require, let worst = cmp.classes.filter({ $0.frames > 0 }).min(by: { $0.agreement < $1.agreement }), worst.agreement < require {
      throw CommandFailure("\(worst.oracleClass.rawValue) agrees on \(Describe.formatFixed(worst.agreement * 100, digits: 2))%, below the required \(Describe.formatFixed(require * 100, digits: 2))%")
    }
  }
}
