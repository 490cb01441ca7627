import Foundation
import Glibc
import KscopeCore
import KscopeMaps
import KscopeOS
import KscopeSnapshot
import KscopeTestSupport
import Testing

/// Issue 10: a reader of an untrusted file uses at most 2x the file's size in memory. Each
/// reader runs in a child `kscope` process on a large valid input, and the child's own peak
/// RSS (wait4's ru_maxrss) is compared with the input's size.
@Suite struct ReaderMemoryTests {
  /// The recorded 6.12 layout, as the base of a dwarf2json-sized ISF.
  static let recorded =
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("KscopeLayoutTests/Recorded/6.12.117+deb12-cloud-amd64.json").path

  /// A valid ISF of about `bytes` bytes from another producer: the recorded layout plus filler
  /// structs (40 pointer members each) the way a whole kernel's ISF has thousands of types.
  static func largeISF(bytes: Int, at path: String) throws {
    let base = try Files.read(recorded)
    var text = String(decoding: base, as: UTF8.self)
    // Another producer: what `layout import` is for.
    text = text.replacingOccurrences(of: "\"name\": \"kscope\"", with: "\"name\": \"dwarf2json\"")
    guard let userTypes = text.range(of: "\"user_types\": {") else {
      throw TestFailure("no user_types in \(recorded)")
    }
    let head = String(text[..<userTypes.upperBound])
    let tail = String(text[userTypes.upperBound...])
    guard FileManager.default.createFile(atPath: path, contents: nil) else {
      throw TestFailure("cannot create \(path)")
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? out.close() }
    try out.write(contentsOf: Data(head.utf8))
    var written = head.utf8.count + tail.utf8.count
    var i = 0
    while written < bytes {
      var s = "\n  \"filler_\(i)\": {\"kind\": \"struct\", \"size\": 320, \"fields\": {"
      for j in 0..<40 {
        s += j == 0 ? "\n" : ",\n"
        s +=
          "    \"member_\(j)\": {\"offset\": \(j * 8), \"type\": {\"kind\": \"pointer\", \"subtype\": {\"kind\": \"struct\", \"name\": \"filler_\(i + 1)\"}}}"
      }
      s += "}},"
      try out.write(contentsOf: Data(s.utf8))
      written += s.utf8.count
      i += 1
    }
    try out.write(contentsOf: Data(tail.utf8))
  }

  @Test func layoutImportStaysWithinTwiceTheInput() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let isf = dir + "/kernel.json"
    // Just under the 64 MiB import limit.
    try Self.largeISF(bytes: 60 << 20, at: isf)
    let size = try OpenFile.open(isf).size
    #expect(size > 56 << 20 && size <= 64 << 20)
    let run = try ChildProcess.measured(
      [try kscopeBinary(), "layout", "import", isf, "-o", dir + "/layout.json"], errorsToo: true)
    #expect(run.succeeded)
    let peak = UInt64(run.maxRSSKiB) * 1024
    print(
      "layout import of \(size) bytes: peak RSS \(peak >> 20) MiB (\(Double(peak) / Double(size))x)"
    )
    #expect(peak <= 2 * size, "peak RSS \(peak) bytes for a \(size)-byte ISF")
    // The import kept what the walkers need, not the filler.
    let imported = String(decoding: try Files.read(dir + "/layout.json"), as: UTF8.self)
    #expect(imported.contains("\"task_struct\"") && !imported.contains("filler_"))
  }

  /// `layout show` (the reader `color --layout` uses) on an ISF just under its 8 MiB limit.
  /// At this size the process's own start (~25 MiB) is larger than 2x the input, so the bound
  /// is on the memory above that: the same command on the recorded 80 KB layout.
  @Test func layoutReadStaysWithinTwiceTheInputAboveItsBaseline() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let isf = dir + "/kernel.json"
    try Self.largeISF(bytes: 7 << 20 + 1 << 19, at: isf)
    let size = try OpenFile.open(isf).size
    #expect(size > 7 << 20 && size <= 8 << 20)
    let binary = try kscopeBinary()
    let baseline = try ChildProcess.measured([binary, "layout", "show", Self.recorded])
    let run = try ChildProcess.measured([binary, "layout", "show", isf])
    #expect(baseline.succeeded && run.succeeded)
    let above = UInt64(max(0, run.maxRSSKiB - baseline.maxRSSKiB)) * 1024
    print(
      "layout show of \(size) bytes: peak RSS \(run.maxRSSKiB >> 10) MiB, \(above >> 20) MiB above the baseline's \(baseline.maxRSSKiB >> 10) MiB"
    )
    #expect(above <= 2 * size, "\(above) bytes above the baseline for a \(size)-byte ISF")
  }

  /// A deterministic stream of numbers (the maps and regions below must be the same each run).
  struct Numbers {
    var state: UInt64
    mutating func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(bound))
    }
  }

  /// A color map the way `kscope color` writes one for a guest of `frames` frames: runs of
  /// 1-200 frames of every color (many short runs make the run index large), and a page-cache
  /// extent with a file identity and path for every 16th run.
  static func largeMap(frames: Int, at path: String) throws -> Int {
    var numbers = Numbers(state: 10)
    let colors: [Color] = [
      .free, .zero, .kernelCode, .kernelData, .pageTable, .kernelHeap, .pageCache, .userCode,
      .userData, .kernelOther, .reserved,
    ]
    var entries: [UInt16] = []
    entries.reserveCapacity(frames)
    var extents: [AttributeExtent] = []
    var run = 0
    while entries.count < frames {
      let n = min(1 + numbers.next(200), frames - entries.count)
      let color = colors[run % colors.count]
      if color == .pageCache, run % 16 == 6 {
        extents.append(
          AttributeExtent(
            start: UInt64(entries.count), count: UInt64(n),
            file: FileIdentity(device: 254 << 20 | 1, inode: UInt64(run), index: 0),
            path: "/var/lib/postgresql/15/main/base/16384/\(run)"))
      }
      for i in 0..<n { entries.append(FrameEntry(color, i % 4 == 0 ? [.mapped] : []).rawValue) }
      run += 1
    }
    let header = ColorMapHeader(
      sources: [], created: 1_790_000_000, kernelRelease: "6.12.117+deb12-cloud-amd64",
      kernelBuildID: "3b43fad5", metadata: [("generator", "ReaderMemoryTests")])
    return try ColorMapFile.write(ColorMap(header: header, entries: entries, extents: extents), to: path)
  }

  /// `map info` on a 15.4 MB map (7 million frames, 27 GiB of guest RAM, as the audit measured).
  /// The map reader reads the file in pieces into the decoded map, so what it holds above the
  /// process's own start is about the file's size; the bound is 2x, above the same command on
  /// a 1,024-frame map (as for `layout show`).
  @Test func mapInfoStaysWithinTwiceTheInputAboveItsBaseline() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let small = dir + "/small.kcm", large = dir + "/large.kcm"
    _ = try Self.largeMap(frames: 1024, at: small)
    let size = UInt64(try Self.largeMap(frames: 7_000_000, at: large))
    #expect(size > 14 << 20)
    let binary = try kscopeBinary()
    let baseline = try ChildProcess.measured([binary, "map", "info", small])
    let run = try ChildProcess.measured([binary, "map", "info", large])
    #expect(baseline.succeeded && run.succeeded)
    let above = UInt64(max(0, run.maxRSSKiB - baseline.maxRSSKiB)) * 1024
    print(
      "map info of \(size) bytes: peak RSS \(run.maxRSSKiB >> 10) MiB, \(above >> 20) MiB above the baseline's \(baseline.maxRSSKiB >> 10) MiB (\(Double(above) / Double(size))x)"
    )
    #expect(above <= 2 * size, "\(above) bytes above the baseline for a \(size)-byte map")
  }

  /// A hint region of `regionSize` bytes filled the way an agent fills one on a big guest: a
  /// frame table of `frames` frames in short runs, then as many cached files (with frame
  /// extents) as fit.
  static func largeHints(frames: Int, files: Int, regionSize: Int) throws -> [UInt8] {
    var numbers = Numbers(state: 7)
    var k = KernelSymbolHints()
    k.kaslrOffset = 0x2_4000_000
    k.text = KernelVirtualAddress(HintFormat.linkedText + 0x2_4000_000)
    k.pagingLevels = 4
    let colors: [Color] = [.free, .kernelCode, .kernelData, .pageCache, .userData, .kernelHeap]
    var entries: [UInt16] = []
    entries.reserveCapacity(frames)
    var run = 0
    while entries.count < frames {
      let n = min(1 + numbers.next(40), frames - entries.count)
      entries.append(contentsOf: repeatElement(FrameEntry(colors[run % colors.count]).rawValue, count: n))
      run += 1
    }
    var cached: [CachedFile] = []
    for f in 0..<files {
      var extents: [FileExtent] = []
      var page: UInt64 = 0
      for _ in 0..<(1 + numbers.next(8)) {
        let pages = UInt32(1 + numbers.next(16))
        extents.append(
          FileExtent(filePage: page, pages: pages, frame: PageFrameNumber(UInt64(numbers.next(frames)))))
        page += UInt64(pages) + UInt64(numbers.next(4))
      }
      let resident = extents.reduce(0) { $0 + UInt64($1.pages) }
      cached.append(
        CachedFile(
          path: "/usr/lib/x86_64-linux-gnu/file-\(f).so", device: 254 << 20 | 1, inode: UInt64(100 + f),
          size: page * 4096, residentPages: resident, extents: extents, framesKnown: true))
    }
    let content = HintContent(
      kernelRelease: "6.12.117+deb12-cloud-amd64", buildID: Array(0..<20), published: 1_790_000_000,
      kernel: k, frames: FrameClassTable(entries: entries), files: cached,
      metadata: [("agent.version", "1")])
    let encoded = try HintFormat.encode(content, regionSize: regionSize, generation: 2)
    return encoded.bytes + [UInt8](repeating: 0, count: regionSize - encoded.bytes.count)
  }

  /// Runs `command` (`hints read` with its arguments, or `color` ...) on a small and a large
  /// region and returns how many bytes the large one's peak RSS is above the small one's.
  static func peakAbove(
    _ command: [String], small: String, large: String, output: String = "/dev/null", what: String
  ) throws -> UInt64 {
    let binary = try kscopeBinary()
    let baseline = try ChildProcess.measured([binary] + command.map { $0 == "REGION" ? small : $0 })
    let run = try ChildProcess.measured([binary] + command.map { $0 == "REGION" ? large : $0 }, output: output)
    // `color` of the all-holes sample ends with one error line, the same for both.
    #expect(baseline.exitStatus == run.exitStatus && run.signal == nil, "\(what): exit \(String(describing: run.exitStatus))")
    let above = UInt64(max(0, run.maxRSSKiB - baseline.maxRSSKiB)) * 1024
    print(
      "\(what): peak RSS \(run.maxRSSKiB >> 10) MiB, \(above >> 20) MiB above the baseline's \(baseline.maxRSSKiB >> 10) MiB (\(String(format: "%.2f", Double(above) / Double(32 << 20)))x the 32 MiB region)"
    )
    return above
  }

  /// `hints read` and `hints read --json` on a 32 MiB region, nearly all of it used (4 Mi
  /// frames, 16 GiB of guest RAM, and 150,000 cached files), against the same command on a
  /// small region. The JSON is written as it is produced: it must be whole (jq reads it).
  @Test func hintsReadStaysWithinTwiceTheInputAboveItsBaseline() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let small = dir + "/small", large = dir + "/large"
    try Data(try Self.largeHints(frames: 4096, files: 10, regionSize: 1 << 16)).write(
      to: URL(fileURLWithPath: small))
    let bytes = try Self.largeHints(frames: 4 << 20, files: 150_000, regionSize: 32 << 20)
    let used = bytes.lastIndex { $0 != 0 }.map { $0 + 1 } ?? 0
    try Data(bytes).write(to: URL(fileURLWithPath: large))
    let size = UInt64(bytes.count)
    #expect(used > 24 << 20, "only \(used) bytes of the region used")
    let text = try Self.peakAbove(["hints", "read", "REGION"], small: small, large: large, what: "hints read")
    #expect(text <= 2 * size, "\(text) bytes above the baseline for a \(size)-byte region")
    let json = try Self.peakAbove(
      ["hints", "read", "REGION", "--json"], small: small, large: large, output: dir + "/out.json",
      what: "hints read --json")
    #expect(json <= 2 * size, "\(json) bytes above the baseline for a \(size)-byte region")
    let files = try runProgram("/usr/bin/jq", [".files | length", dir + "/out.json"])
    #expect(files.status == 0 && files.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "150000")
  }

  /// A 32 MiB region of nothing but tiny cached files: as many as the format allows (72-byte
  /// records: a path of at most 8 bytes, one extent of one page with its frame), no frame
  /// table. Each file decoded costs more than its record, so the reader keeps the records and
  /// decodes a file when asked.
  static func tinyFilesRegion(regionSize: Int) throws -> (bytes: [UInt8], files: Int) {
    let record = 72
    let count = regionSize / record
    var cached: [CachedFile] = []
    cached.reserveCapacity(count)
    for f in 0..<count {
      cached.append(
        CachedFile(
          path: "/" + String(f, radix: 36), device: 254 << 20 | 1, inode: UInt64(f + 1), size: 4096,
          residentPages: 1, extents: [FileExtent(filePage: 0, pages: 1, frame: PageFrameNumber(UInt64(count - f)))],
          framesKnown: true))
    }
    var k = KernelSymbolHints()
    k.pagingLevels = 4
    let content = HintContent(
      kernelRelease: "6.1.0-56-cloud-amd64", buildID: Array(0..<20), published: 1_790_000_000, kernel: k,
      frames: nil, files: cached)
    let encoded = try HintFormat.encode(content, regionSize: regionSize, generation: 2)
    let bytes = encoded.bytes + [UInt8](repeating: 0, count: regionSize - encoded.bytes.count)
    let h = try HintFormat.decode(bytes)
    return (bytes, h.files.count)
  }

  @Test func aRegionOfOnlyTinyFilesStaysWithinTwiceItsSizeAboveTheBaseline() throws {
    let dir = try makeTempDir()
    let usual = try SampleSnapshot.makeDirectory()
    defer {
      cleanup(dir)
      cleanup(usual)
    }
    let small = dir + "/small", large = dir + "/large"
    try Data(try Self.tinyFilesRegion(regionSize: 1 << 16).bytes).write(to: URL(fileURLWithPath: small))
    let (bytes, files) = try Self.tinyFilesRegion(regionSize: 32 << 20)
    try Data(bytes).write(to: URL(fileURLWithPath: large))
    let size = UInt64(bytes.count)
    // All but the header, the directory, the kernel section and less than one record.
    #expect(files * 72 > (32 << 20) - 2048, "\(files) files")
    print("tiny-files region: \(files) files of one extent in \(size) bytes")
    try Self.expectRegionReadersWithin2x(
      "tiny files", small: small, large: large, size: size, dir: dir, snapshot: usual,
      jq: ".files | length", count: files)
  }

  /// `hints read`, `hints read --json` (which jq must read back, `jq` printing `count`) and
  /// `color --hints` of the `large` region each peak at most 2x its size above the same command
  /// on the `small` one. `color` reads and checks the region (then sets it aside: it is not the
  /// snapshot's size) before the analyzer ends on the sample's all-holes RAM.
  static func expectRegionReadersWithin2x(
    _ shape: String, small: String, large: String, size: UInt64, dir: String, snapshot: String,
    jq: String, count: Int
  ) throws {
    let text = try peakAbove(["hints", "read", "REGION"], small: small, large: large, what: "hints read (\(shape))")
    #expect(text <= 2 * size, "\(text) bytes above the baseline for a \(size)-byte region")
    let json = try peakAbove(
      ["hints", "read", "REGION", "--json"], small: small, large: large, output: dir + "/out.json",
      what: "hints read --json (\(shape))")
    #expect(json <= 2 * size, "\(json) bytes above the baseline for a \(size)-byte region")
    let listed = try runProgram("/usr/bin/jq", [jq, dir + "/out.json"])
    #expect(listed.status == 0 && listed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(count))
    let layout = recorded.replacingOccurrences(of: "6.12.117+deb12-cloud-amd64", with: "6.1.0-56-cloud-amd64")
    let color = try peakAbove(
      ["color", snapshot, "--layout", layout, "--hints", "REGION", "-o", snapshot + "/map.kcm"], small: small,
      large: large, what: "color --hints (\(shape))")
    #expect(color <= 2 * size, "\(color) bytes above the baseline for a \(size)-byte region")
  }

  /// The manifest reader: `kscope hints read` and `kscope color` of a snapshot whose
  /// manifest.json is the largest one above (just under the 1 MiB limit), against the same
  /// snapshot with the usual 2 KB manifest. `hints read` of a snapshot does little but read
  /// the manifest (the sample's region is all zeros: "no hints"), so its peak is the manifest
  /// reader's; `color` goes on (the sample's RAM is all holes: no kernel to find), and shows
  /// what the decoded manifest costs for the whole run. Both end the same way with either
  /// manifest; the bound is on what the large manifest adds.
  @Test func aMaxSizeManifestStaysWithinTwiceIt() throws {
    let usual = try SampleSnapshot.makeDirectory()
    let padded = try SampleSnapshot.makeDirectory()
    defer {
      cleanup(usual)
      cleanup(padded)
    }
    let manifest = try SampleSnapshot.largestManifest()
    #expect(try SnapshotManifest.decode(manifest).qemuCommandLine.count == 256)
    try manifest.write(to: URL(fileURLWithPath: padded + "/manifest.json"))
    let size = UInt64(manifest.count)
    #expect(size > 1000 << 10 && size <= UInt64(SnapshotManifest.maxManifestBytes))
    let binary = try kscopeBinary()
    for command in [["hints", "read"], ["color"]] {
      func argv(_ dir: String) -> [String] { [binary] + command + [dir] + (command == ["color"] ? ["-o", dir + "/map.kcm"] : []) }
      let baseline = try ChildProcess.measured(argv(usual), errorsToo: true)
      let run = try ChildProcess.measured(argv(padded), output: padded + "/err", errorsToo: true)
      let message = String(decoding: try Files.read(padded + "/err", limit: 1 << 16), as: UTF8.self)
      // Refused or done, cleanly: an exit status (no signal), one line when refused.
      #expect(run.signal == nil && baseline.signal == nil)
      #expect(run.exitStatus == baseline.exitStatus, "\(message)")
      if run.exitStatus != 0 { #expect(message.split(separator: "\n").count == 1, "\(message)") }
      let above = UInt64(max(0, run.maxRSSKiB - baseline.maxRSSKiB)) * 1024
      print(
        "\(command.joined(separator: " ")) with a \(size)-byte manifest: peak RSS \(run.maxRSSKiB) KiB, \(above >> 10) KiB above the usual manifest's \(baseline.maxRSSKiB) KiB (\(String(format: "%.2f", Double(above) / Double(size)))x); \(message.prefix(200))"
      )
      #expect(above <= 2 * size, "\(command): \(above) bytes above the baseline for a \(size)-byte manifest")
    }
  }

  /// A snapshot that claims 16 GiB of RAM in a sparse file holding 8 MiB of garbage: `kscope
  /// color` ends cleanly (a map or a one-line error), and its memory follows the RAM file's
  /// allocated bytes, not the size it claims. The bound: twice the allocated bytes, plus the
  /// map's 2 bytes per claimed frame (a map has an entry for every frame, hole or not), above
  /// the same command on the all-holes 512 MiB sample. The sample kernel's recorded layout is
  /// given, so the analyzer reads the RAM.
  @Test func colorOfASparseSnapshotClaimingManyGiBFollowsItsRealSize() throws {
    let usual = try SampleSnapshot.makeDirectory()
    let big = try SampleSnapshot.makeDirectory()
    defer {
      cleanup(usual)
      cleanup(big)
    }
    let claimed: UInt64 = 16 << 30
    var m = SampleSnapshot.manifest()
    m.ramSize = claimed
    m.memoryLayout = GuestRAMRegion.q35Layout(ramSize: claimed)
    try m.encoded().write(to: URL(fileURLWithPath: big + "/manifest.json"))
    try SampleSnapshot.createSparseFile(big + "/ram", size: claimed)
    // Garbage in eight 1 MiB blocks spread over the file (a forged or damaged snapshot).
    var numbers = Numbers(state: 3)
    let ram = try FileHandle(forWritingTo: URL(fileURLWithPath: big + "/ram"))
    for i in 0..<8 {
      try ram.seek(toOffset: UInt64(i) * (claimed / 8) + UInt64(numbers.next(1 << 20)) << 12 % (claimed / 8 - (1 << 20)))
      try ram.write(contentsOf: Data((0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: numbers.next(256)) }))
    }
    try ram.close()
    let allocated = SparseFile.allocatedBytes(big + "/ram")
    #expect(allocated >= 8 << 20 && allocated < 16 << 20)
    let binary = try kscopeBinary()
    // The recorded layout of the sample's kernel: the analyzer itself reads the RAM.
    let layout = Self.recorded.replacingOccurrences(of: "6.12.117+deb12-cloud-amd64", with: "6.1.0-56-cloud-amd64")
    let baseline = try ChildProcess.measured(
      [binary, "color", usual, "--layout", layout, "-o", usual + "/map.kcm"], errorsToo: true)
    let run = try ChildProcess.measured(
      [binary, "color", big, "--layout", layout, "-o", big + "/map.kcm"], output: big + "/err", errorsToo: true)
    let message = String(decoding: try Files.read(big + "/err", limit: 1 << 16), as: UTF8.self)
    #expect(run.signal == nil, "\(message)")
    if run.exitStatus != 0 { #expect(message.split(separator: "\n").count == 1, "\(message)") }
    let frames = claimed / 4096
    let bound = 2 * allocated + 2 * frames
    let above = UInt64(max(0, run.maxRSSKiB - baseline.maxRSSKiB)) * 1024
    print(
      "color of a \(claimed >> 30) GiB sparse snapshot (\(allocated >> 20) MiB allocated): exit \(run.exitStatus.map(String.init) ?? "-"), peak RSS \(run.maxRSSKiB >> 10) MiB, \(above >> 20) MiB above the all-holes sample's \(baseline.maxRSSKiB >> 10) MiB (bound \(bound >> 20) MiB); \(message.prefix(200))"
    )
    #expect(above <= bound, "\(above) bytes above the baseline")
  }
}

extension ReaderMemoryTests {
  /// A region of nothing but a frame table in runs of three frames of alternating colors (4
  /// bytes each on disk; runs of one frame would be stored raw, 2 bytes a frame).
  static func frameRunsRegion(regionSize: Int) throws -> [UInt8] {
    let runs = (regionSize - 4096) / 4
    var table = FrameClassTable(totalFrames: UInt64(runs) * 3)
    for i in 0..<runs { table.append(FrameEntry(i % 2 == 0 ? .free : .kernelData).rawValue, count: 3) }
    var k = KernelSymbolHints()
    k.pagingLevels = 4
    let content = HintContent(
      kernelRelease: "6.1.0-56-cloud-amd64", buildID: Array(0..<20), published: 1_790_000_000, kernel: k,
      frames: table, files: [])
    let encoded = try HintFormat.encode(content, regionSize: regionSize, generation: 2)
    return encoded.bytes + [UInt8](repeating: 0, count: regionSize - encoded.bytes.count)
  }

  /// The frame table's most expensive shape: a region of nothing but runs (4 bytes each on
  /// disk, 6 decoded), so the reader reads the section a chunk at a time into the table.
  @Test func aRegionOfOnlyFrameRunsStaysWithinTwiceItsSizeAboveTheBaseline() throws {
    let dir = try makeTempDir()
    let usual = try SampleSnapshot.makeDirectory()
    defer {
      cleanup(dir)
      cleanup(usual)
    }
    let small = dir + "/small", large = dir + "/large"
    try Data(try Self.frameRunsRegion(regionSize: 1 << 16)).write(to: URL(fileURLWithPath: small))
    let bytes = try Self.frameRunsRegion(regionSize: 32 << 20)
    try Data(bytes).write(to: URL(fileURLWithPath: large))
    let size = UInt64(bytes.count)
    let runs = try HintFormat.decode(bytes).frames?.runCount ?? 0
    #expect(runs * 4 > (32 << 20) - 8192, "\(runs) runs")
    print("frame-runs region: \(runs) runs in \(size) bytes")
    try Self.expectRegionReadersWithin2x(
      "frame runs", small: small, large: large, size: size, dir: dir, snapshot: usual,
      jq: ".frames.runs", count: Int(runs))
  }
}

extension ReaderMemoryTests {
  /// Republishes a region file once, as the agent would, at the moment a reader first reads
  /// it (inotify's IN_ACCESS): the generation made odd, then the header of a second publication
  /// (the same body, generation 4, its own checksum). The reader's first, piece-by-piece read is
  /// then torn for certain (its whole decode sits between its two generation reads), and its
  /// retry finds the region stable.
  final class Republisher: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var republished = false
    private let done = DispatchSemaphore(value: 0)

    init(path: String, region: [UInt8]) throws {
      let used = Int(region[32..<40].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
      var other = region
      other[HintFormat.generationOffset] = 4
      var h = XXH64()
      h.update(other[0..<HintFormat.checksumOffset])
      h.update([UInt8](repeating: 0, count: 8))
      h.update(other[(HintFormat.checksumOffset + 8)..<used])
      let sum = h.finish()
      for i in 0..<8 { other[HintFormat.checksumOffset + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
      let header = Data(other[0..<HintFormat.headerSize])
      guard let file = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileNoSuchFile) }
      let watch = inotify_init1(Int32(IN_CLOEXEC))
      guard watch >= 0, inotify_add_watch(watch, path, UInt32(IN_ACCESS)) >= 0 else {
        throw CocoaError(.fileReadUnknown)
      }
      Thread.detachNewThread { [self] in
        defer {
          close(watch)
          try? file.close()
          self.done.signal()
        }
        var p = pollfd(fd: watch, events: Int16(POLLIN), revents: 0)
        while !self.isStopped {
          guard poll(&p, 1, 100) == 1 else { continue }
          file.seek(toFileOffset: UInt64(HintFormat.generationOffset))
          file.write(Data([3]))
          Thread.sleep(forTimeInterval: 0.002)
          file.seek(toFileOffset: 0)
          file.write(header)
          self.lock.lock()
          self.republished = true
          self.lock.unlock()
          return
        }
      }
    }

    private var isStopped: Bool {
      lock.lock()
      defer { lock.unlock() }
      return stopped
    }

    /// Stops watching; true when the region was republished.
    func stop() -> Bool {
      lock.lock()
      stopped = true
      lock.unlock()
      done.wait()
      lock.lock()
      defer { lock.unlock() }
      return republished
    }
  }

  /// A live VM's region being republished while `hints read` reads it: the first read (piece
  /// by piece, the whole decode inside the seqlock window) is torn, and the retry copies the
  /// region in one read and decodes the copy, giving the copy back as it decodes. The peak stays
  /// within 2x the region above the same command on a small region, for the two shapes whose
  /// decoded form is largest beside the region: only files, and only frame runs.
  @Test(arguments: ["tiny files", "frame runs"])
  func aRetriedReadOfARegionBeingRepublishedStaysWithinTwiceItsSize(shape: String) throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    func make(_ size: Int) throws -> [UInt8] {
      shape == "tiny files" ? try Self.tinyFilesRegion(regionSize: size).bytes : try Self.frameRunsRegion(regionSize: size)
    }
    let small = dir + "/small", large = dir + "/large"
    try Data(try make(1 << 16)).write(to: URL(fileURLWithPath: small))
    let bytes = try make(32 << 20)
    try Data(bytes).write(to: URL(fileURLWithPath: large))
    let size = UInt64(bytes.count)
    let binary = try kscopeBinary()
    let baseline = try ChildProcess.measured([binary, "hints", "read", small])
    #expect(baseline.exitStatus == 0)
    let writer = try Republisher(path: large, region: bytes)
    let run = try ChildProcess.measured([binary, "hints", "read", large], output: dir + "/out.txt", errorsToo: true)
    #expect(writer.stop(), "the reader never read the region")
    let out = (try? String(contentsOfFile: dir + "/out.txt", encoding: .utf8)) ?? ""
    let note = out.split(separator: "\n").first { $0.contains("the agent was publishing: read") }
    #expect(run.exitStatus == 0 && note != nil, "expected a retried read: \(out.prefix(300))")
    let above = UInt64(max(0, run.maxRSSKiB - baseline.maxRSSKiB)) * 1024
    print(
      "retried read (\(shape)): \(note.map(String.init) ?? "read once"); peak RSS \(run.maxRSSKiB >> 10) MiB, \(above >> 20) MiB above the baseline's \(baseline.maxRSSKiB >> 10) MiB (\(String(format: "%.2f", Double(above) / Double(size)))x the region)"
    )
    #expect(above <= 2 * size, "\(above) bytes above the baseline for a \(size)-byte region")
  }
}
