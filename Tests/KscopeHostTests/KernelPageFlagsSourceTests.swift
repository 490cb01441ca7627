import Foundation
import KscopeCore
import KscopeMaps
import Logging
import KscopeTestSupport
import Testing

let logger = Logger(label: "test")

@Test func craftedKpageflagsWithSiblings() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  // 8 frames: buddy, anon+mmap, lru file, slab, pgtable, reserved kernel code, nothing, nopage.
  try writeU64s(
    [KPF.buddy, KPF.anon | KPF.mmap | KPF.lru, KPF.lru | KPF.mmap, KPF.slab, KPF.pgtable,
     KPF.reserved, 0, KPF.nopage], to: "\(dir)/kpageflags")
  try writeU64s([0, 1, 2, 0, 0, 0, 0, 0], to: "\(dir)/kpagecount")
  try "00000000-00004fff : System RAM\n  00005000-00005fff : Kernel code\n00005000-00007fff : System RAM\n"
    .write(toFile: "\(dir)/iomem", atomically: true, encoding: .utf8)
  let source = KernelPageFlagsSource(flagsPath: "\(dir)/kpageflags")
  #expect(source.countsPath == "\(dir)/kpagecount")
  #expect(source.iomemPath == "\(dir)/iomem")
  let report = try source.produce(created: 1, logger: logger)
  let m = report.map
  #expect(m.frameCount == 8)
  #expect((0..<8).map { m.entry(at: UInt64($0))!.color } == [
    .free, .userData, .pageCache, .kernelHeap, .pageTable, .kernelCode, .unknown, .reserved,
  ])
  #expect(m.entry(at: 2)!.flags == [.mapped, .shared])
  #expect(m.header.sources == [.kernelPageFlags, .kernelResourceMap])
  #expect(report.usedCounts)
  // The digest describes the flags table it was made from.
  let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/kpageflags")))
  #expect(m.header.image == .xxh64(XXH64.hash(raw), size: 64))

  try ColorMapFile.write(m, to: "\(dir)/out.kcm")
  let back = try ColorMapFile.open("\(dir)/out.kcm")
  #expect(back.entries == m.entries)
  #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp") }.isEmpty)
}

@Test func badKpageflagsInputsFailClearly() throws {
  let dir = try makeTempDir()
  defer { cleanup(dir) }
  try Data([1, 2, 3]).write(to: URL(fileURLWithPath: "\(dir)/odd"))
  try Data().write(to: URL(fileURLWithPath: "\(dir)/empty"))
  for (path, words) in [("\(dir)/odd", "multiple of 8"), ("\(dir)/empty", "empty"), ("\(dir)/missing", "No such file")] {
    #expect {
      _ = try KernelPageFlagsSource(flagsPath: path).produce(created: 0, logger: logger)
    } throws: { error in
      "\(error)".contains(path) && "\(error)".contains(words) && !"\(error)".contains("\n")
    }
  }
  try writeU64s([0, 0], to: "\(dir)/kpageflags")
  try writeU64s([0], to: "\(dir)/kpagecount")
  #expect {
    _ = try KernelPageFlagsSource(flagsPath: "\(dir)/kpageflags").produce(created: 0, logger: logger)
  } throws: { "\($0)".contains("kpagecount") && "\($0)".contains("1 frames") }
}

/// The real thing: this machine's /proc/kpageflags (CI runs as root, like the tool's users).
@Test func colorsThisMachineConsistentlyWithTheKernelsCounters() throws {
  guard getuid() == 0 else {
    throw TestFailure("reading /proc/kpageflags needs root; run the tests as root (CI does)")
  }
  // The buddy allocator's free count as the kernel reports it, read just before and after the
  // scan: ours must lie within 5% of that bracket (memory moves while the scan runs; other
  // tests run in parallel). Three tries, so a burst of allocation elsewhere is not a failure.
  func freePages() throws -> Double {
    let vmstat = try String(contentsOfFile: "/proc/vmstat", encoding: .utf8)
    let line = try #require(vmstat.split(separator: "\n").first { $0.hasPrefix("nr_free_pages ") })
    return try #require(Double(line.split(separator: " ")[1]))
  }
  var attempts: [String] = []
  var report: KernelPageFlagsSource.Report? = nil
  for _ in 0..<3 {
    let before = try freePages()
    let r = try KernelPageFlagsSource(flagsPath: "/proc/kpageflags").produce(created: 0, logger: logger)
    let after = try freePages()
    let ours = Double(r.map.count(of: .free))
    let lo = min(before, after) * 0.95
    let hi = max(before, after) * 1.05
    report = r
    if ours >= lo && ours <= hi { break }
    attempts.append("free frames \(ours), nr_free_pages \(before)..\(after)")
  }
  #expect(attempts.count < 3, "\(attempts)")
  let m = try #require(report).map
  #expect(m.frameCount > 1000)
  #expect(m.header.kernelRelease != nil)
  #expect(try #require(report).usedResourceMap)
  // Kernel code is the iomem "Kernel code" range, which is never empty.
  #expect(m.count(of: .kernelCode) > 100)
  #expect(m.count(of: .pageTable) > 0)
  #expect(m.count(of: .kernelHeap) > 0)
}
