import Foundation
import KscopeAgent
import KscopeCore
import KscopeTestSupport
import KscopeHints
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The agent end to end on this machine: `kscope-agent --out FILE` as root against the real
/// /proc, read back with the host's reader. These tests need root (kallsyms addresses,
/// kpageflags, pagemap frames) and fail saying so otherwise; they never skip.
@Suite(.serialized) struct AgentHostTests {
  static func requireRoot() throws {
    guard getuid() == 0 else { throw TestFailure("the agent tests need root (kpageflags, kallsyms, pagemap)") }
  }

  /// A directory of files just written and read back, so their pages are resident.
  static func makeWorkload() throws -> (dir: String, files: [String: Int]) {
    let dir = "/var/tmp/kscope-agent-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
    var files: [String: Int] = [:]
    for (name, pages) in [("a.html", 3), ("sub/b.db", 64), ("sub/c.bin", 257)] {
      let path = dir + "/" + name
      var bytes = [UInt8](repeating: 0, count: pages * 4096 - 100)
      for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ pages) }
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      _ = try Data(contentsOf: URL(fileURLWithPath: path))
      files[path] = pages
    }
    return (dir, files)
  }

  @Test func onceAgainstThisMachine() throws {
    try Self.requireRoot()
    let (dir, files) = try Self.makeWorkload()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let out = dir + "/hints"
    let run = try runProgram(agentBinary(), ["--out", out, "--once", "--root", dir, "--verbose"])
    #expect(run.status == 0, "\(run.stderr)")
    let h = try HintRegionFile.read(out)

    // The header: this kernel.
    let release = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
    #expect(h.kernelRelease == release.trimmingCharacters(in: .whitespacesAndNewlines))
    #expect(h.buildID.count == 20)
    #expect(h.regionSize == 4 << 20)

    // Kernel symbols against /proc/kallsyms, read here independently.
    let kallsyms = try String(contentsOfFile: "/proc/kallsyms", encoding: .utf8)
    guard let textLine = kallsyms.split(separator: "\n").first(where: { $0.hasSuffix(" _text") }),
      let text = UInt64(textLine.prefix(16), radix: 16)
    else { throw TestFailure("no _text in /proc/kallsyms") }
    #expect(h.kernel.text?.rawValue == text)
    #expect(h.kernel.kaslrOffset == text - HintFormat.linkedText)
    let vmcoreinfo = try String(contentsOfFile: "/sys/kernel/vmcoreinfo", encoding: .utf8).split(separator: " ")
    #expect(h.kernel.vmcoreinfo?.address.rawValue == UInt64(vmcoreinfo[0].dropFirst(2), radix: 16))
    if let pob = h.kernel.pageOffsetBase { #expect(pob.rawValue >= 0xFF00_0000_0000_0000) }

    // The frame table covers every frame of /proc/kpageflags.
    let frames = try countFrames()
    #expect(h.frames?.totalFrames == frames)
    #expect(h.frames?.frameCount == frames)
    #expect(h.metadata("source.frames")?.hasPrefix("kpageflags+kpagecount") == true)

    // The page-cache table lists the files just read, all resident, with their frames.
    for (path, pages) in files {
      let f = h.files.first { $0.path == path }
      #expect(f != nil, "\(path) missing from the page-cache table")
      guard let f else { continue }
      var st = stat()
      #expect(stat(path, &st) == 0)
      #expect(f.inode == UInt64(st.st_ino))
      #expect(f.size == UInt64(pages * 4096 - 100))
      // Just written and read, so resident; the host's reclaim may take a few pages meanwhile.
      #expect(f.residentPages <= UInt64(pages) && f.residentPages >= UInt64(pages) / 2)
      #expect(f.extents.reduce(0) { $0 + UInt64($1.pages) } == f.residentPages)
      #expect(f.framesKnown)
      // Every frame the agent names holds a page-cache page: the table colors it so and the
      // kernel's own page flags say LRU and not buddy (read here, directly).
      for e in f.extents {
        guard let fr = e.frame else { continue }
        for k in 0..<UInt64(e.pages) {
          let flags = try kpageflags(fr.rawValue + k)
          #expect(flags & KPF.buddy == 0 && flags & KPF.anon == 0, "frame \(fr.rawValue + k) flags \(flags)")
          #expect(flags & KPF.lru != 0 || flags & KPF.mmap != 0, "frame \(fr.rawValue + k) flags \(flags)")
        }
      }
    }

    // The command line reads the same region.
    let cli = try runProgram(kscopeBinary(), ["hints", "read", out, "--json"])
    #expect(cli.status == 0, "\(cli.stderr)")
    let json = try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? [String: Any]
    #expect((json?["generation"] as? NSNumber)?.uint64Value == h.generation)
    #expect(jsonAddress(json?["kaslr_offset"]) == h.kernel.kaslrOffset)
    let jfiles = json?["files"] as? [[String: Any]] ?? []
    #expect(jfiles.count == h.files.count)
    #expect(jfiles.contains { ($0["path"] as? String)?.hasSuffix("/sub/c.bin") == true && ($0["pages"] as? NSNumber)?.intValue == 257 })
  }

  @Test func refreshOnSignalAndStopCleanly() throws {
    try Self.requireRoot()
    let (dir, _) = try Self.makeWorkload()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let out = dir + "/hints"
    let p = try startAgent(["--out", out, "--interval", "1h", "--no-frames", "--root", dir])
    defer { if p.isRunning { p.terminate() } }
    let first = try waitForGeneration(out, above: 0)
    kill(p.processIdentifier, SIGUSR1)
    let second = try waitForGeneration(out, above: first)
    #expect(second == first + 2)
    kill(p.processIdentifier, SIGTERM)
    p.waitUntilExit()
    #expect(p.terminationReason == .exit && p.terminationStatus == 0)
  }

  /// The seqlock under load: the agent republishes as fast as it can while this reader copies
  /// the region; every read is a valid hint set or "stale", never a torn one.
  @Test func readsWhileTheAgentWrites() throws {
    try Self.requireRoot()
    let (dir, _) = try Self.makeWorkload()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let out = dir + "/hints"
    let p = try startAgent(["--out", out, "--interval", "1ms", "--cpu-budget", "0", "--no-frames", "--root", dir])
    defer { if p.isRunning { p.terminate() } }
    _ = try waitForGeneration(out, above: 0)
    var valid = 0
    var stale = 0
    var generations = Set<UInt64>()
    let deadline = Date().addingTimeInterval(3)
    while Date() < deadline {
      do {
        let h = try HintRegionFile.read(out)
        valid += 1
        generations.insert(h.generation)
        #expect(h.files.count == 3)
      } catch {
        switch error {
        case .staleWriting, .staleChanged: stale += 1
        default: Issue.record("torn or bad read: \(error)")
        }
      }
    }
    #expect(valid > 50)
    #expect(generations.count > 10, "the agent should have republished many times")
    print("seqlock: \(valid) valid reads of \(generations.count) generations, \(stale) stale")
  }

  @Test func garbageModeIsRefusedWithOneLine() throws {
    try Self.requireRoot()
    let dir = "/var/tmp/kscope-agent-garbage-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let out = dir + "/hints"
    // One process, one refresh per damage kind: random, mutated, mutated behind a valid
    // checksum, odd generation. Each must be refused by the CLI with one line.
    for seed in 1...8 {
      let run = try runProgram(
        agentBinary(), ["--out", out, "--once", "--garbage", "--seed", String(seed), "--no-frames", "--root", dir])
      #expect(run.status == 0, "\(run.stderr)")
      let cli = try runProgram(kscopeBinary(), ["hints", "read", out])
      #expect(cli.status == 1, "seed \(seed): \(cli.stdout.prefix(200)) \(cli.stderr)")
      let lines = cli.stderr.split(separator: "\n")
      #expect(lines.count == 1 && lines[0].hasPrefix("Error: "), "seed \(seed): \(cli.stderr)")
    }
  }
}

// MARK: - Helpers

func agentBinary() throws -> String { try builtExecutable("kscope-agent") }

/// The built agent, started with `arguments` and its diagnostics discarded.
func startAgent(_ arguments: [String]) throws -> Process {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: try agentBinary())
  p.arguments = arguments
  p.standardError = FileHandle.nullDevice
  try p.run()
  return p
}

/// Waits (up to 60 s) until the region file holds a valid generation above `g`.
func waitForGeneration(_ path: String, above g: UInt64) throws -> UInt64 {
  let deadline = Date().addingTimeInterval(60)
  while Date() < deadline {
    if let h = try? HintRegionFile.read(path), h.generation > g { return h.generation }
    usleep(20_000)
  }
  throw TestFailure("\(path): no generation above \(g) within 60 s")
}

/// Frames in /proc/kpageflags, counted by reading it.
func countFrames() throws -> UInt64 {
  guard let fh = FileHandle(forReadingAtPath: "/proc/kpageflags") else {
    throw TestFailure("/proc/kpageflags unreadable")
  }
  var total: UInt64 = 0
  while let d = try fh.read(upToCount: 1 << 22), !d.isEmpty { total += UInt64(d.count) }
  return total / 8
}

/// One frame's page flags, read directly.
func kpageflags(_ pfn: UInt64) throws -> UInt64 {
  guard let fh = FileHandle(forReadingAtPath: "/proc/kpageflags") else {
    throw TestFailure("/proc/kpageflags unreadable")
  }
  try fh.seek(toOffset: pfn * 8)
  guard let d = try fh.read(upToCount: 8), d.count == 8 else { throw TestFailure("short read at frame \(pfn)") }
  return d.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
}

/// `kscope reseed HEX`'s parser: 32..256 bytes of hex, nothing else.
@Suite struct ReseedSeedTests {
  @Test func seedsAreHexOfBoundedLength() {
    #expect(Reseed.parseSeed(String(repeating: "aB", count: 32)) == [UInt8](repeating: 0xab, count: 32))
    #expect(Reseed.parseSeed(String(repeating: "00", count: 256))?.count == 256)
    #expect(Reseed.parseSeed(String(repeating: "00", count: 31)) == nil)  // too short
    #expect(Reseed.parseSeed(String(repeating: "00", count: 257)) == nil)  // too long
    #expect(Reseed.parseSeed(String(repeating: "0", count: 65)) == nil)  // odd
    #expect(Reseed.parseSeed(String(repeating: "zz", count: 32)) == nil)
  }
}
