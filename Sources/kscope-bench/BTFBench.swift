import KscopeAnalyzer
import KscopeCore
import KscopeSnapshot
import KscopeHints
import KscopeKernelImage
import KscopeLayout
import KscopeOS

// kscope-bench btf [--vmlinuz PATH] [--runs N] [--pahole-runs N] [--kscope PATH] [--snapshot-ram RAM]
//                   [--hints FILE]
//
// A layout from BTF, timed three ways:
// 1. `kscope layout extract BTF --types-only` on the raw .BTF blob of the vmlinuz (what
//    /sys/kernel/btf/vmlinux serves) in fresh child processes (wall time and peak RSS from
//    wait4), against `pahole -F btf -C <the same structs>` on the same blob in the same run;
// 2. in this process, the phases: parsing the blob, collecting the types; decompressing the
//    vmlinuz and finding kallsyms in it;
// 3. with --snapshot-ram, the layout from a guest's memory (vmcoreinfo, BTF, kallsyms); with
//    --hints too (the snapshot's hint region, from a guest agent that published its BTF), the
//    layout from the agent's BTF: read the region, decompress and parse the BTF, kallsyms from
//    memory at the vmcoreinfo the hints name.
// The child is this binary re-executed (`btf --child`, the same library call the CLI makes),
// or the kscope CLI itself with --kscope PATH.

enum BTFBench {
  static func run(_ args: [String]) throws {
    if args.first == "--extract" {
      // The raw .BTF of a vmlinuz, written by a child so that this process stays small: a
      // spawned child's peak RSS counts its parent's high-water mark until it execs.
      guard args.count == 3 else { throw BenchError("usage: btf --extract VMLINUZ OUT") }
      try Files.writeAtomically(try rawBTF(args[1]).blob, to: args[2])
      return
    }
    if args.first == "--child" {
      guard args.count == 3 else { throw BenchError("usage: btf --child BTF OUT") }
      let layout = try KernelImageFile.layout(path: args[1], typesOnly: true)
      try Files.writeAtomically(layout.isfBytes(), to: args[2])
      return
    }
    var vmlinuz = "\(LayoutBench.cacheRoot())/kernels/6.12/vmlinuz"
    var runs = 7
    var paholeRuns = 5
    var kscope: String? = nil
    var snapshotRAM: String? = nil
    var hintsPath: String? = nil
    var i = 0
    while i < args.count {
      let value = i + 1 < args.count ? args[i + 1] : ""
      switch args[i] {
      case "--vmlinuz": vmlinuz = value
      case "--runs": runs = max(1, Int(value) ?? runs)
      case "--pahole-runs": paholeRuns = max(0, Int(value) ?? paholeRuns)
      case "--kscope": kscope = value
      case "--snapshot-ram": snapshotRAM = value
      case "--hints": hintsPath = value
      default:
        print("usage: kscope-bench btf [--vmlinuz PATH] [--runs N] [--pahole-runs N] [--kscope PATH] [--snapshot-ram RAM [--hints FILE]]")
        return
      }
      i += 2
    }
    guard Files.isReadable(vmlinuz) else { throw BenchError("no vmlinuz at \(vmlinuz): run host/setup.sh") }

    let btfPath = "/tmp/kscope-bench-btf-\(ProcessUsage.id).btf"
    let output = "/tmp/kscope-bench-btf-\(ProcessUsage.id).json"
    defer {
      try? Files.remove(btfPath)
      try? Files.remove(output)
    }
    _ = try LayoutBench.measure([LayoutBench.selfPath(), "btf", "--extract", vmlinuz, btfPath])

    // Fresh processes first, while this one is small.
    let extract = kscope.map { [$0, "layout", "extract", btfPath, "--types-only", "-o", output] }
      ?? [LayoutBench.selfPath(), "btf", "--child", btfPath, output]
    var ours: [LayoutBench.Measurement] = []
    for _ in 0..<runs { ours.append(try LayoutBench.measure(extract)) }
    let pahole = ["/usr/bin/pahole", "-F", "btf", "-C", LayoutRequest.default.types.joined(separator: ","), btfPath]
    var theirs: [LayoutBench.Measurement] = []
    for _ in 0..<paholeRuns { theirs.append(try LayoutBench.measure(pahole)) }

    // In process: the phases.
    let (blob, decompress, kallsymsSeconds, kallsymsCount) = try rawBTF(vmlinuz)
    var t = monotonic()
    var parse: [Double] = []
    var collect: [Double] = []
    var writeText: [Double] = []
    var writeBytes: [Double] = []
    var request = LayoutRequest.default
    request.symbols = []
    request.optionalSymbols = []
    for _ in 0..<runs {
      t = monotonic()
      let btf = try BTF(blob)
      let t1 = monotonic()
      let layout = try KernelLayout.fromBTF(btf, symbols: [:], request: request, sourceName: "bench")
      parse.append(t1 - t)
      collect.append(monotonic() - t1)
      // The ISF writer: the text through String (what was written before), and the bytes.
      let t2 = monotonic()
      let text = layout.isfJSON().serialized(expandDepth: 4)
      let t3 = monotonic()
      let bytes = layout.isfBytes()
      let t4 = monotonic()
      guard bytes.count == text.utf8.count else { throw BenchError("the two ISF writers disagree") }
      writeText.append(t3 - t2)
      writeBytes.append(t4 - t3)
    }
    let btf = try BTF(blob)

    print("btf benchmark: \(vmlinuz)")
    print("  raw BTF \(blob.count) bytes, \(btf.typeCount) types; kallsyms \(kallsymsCount) symbols")
    print("  in process: vmlinuz decompression \(LayoutBench.format(decompress)) s, kallsyms \(LayoutBench.format(kallsymsSeconds)) s,"
      + " BTF parse median \(LayoutBench.format(parse.median, digits: 4)) s, types median \(LayoutBench.format(collect.median, digits: 4)) s,"
      + " ISF JSON as a String median \(LayoutBench.format(writeText.median, digits: 4)) s, as bytes median \(LayoutBench.format(writeBytes.median, digits: 4)) s")
    LayoutBench.report("kscope layout extract BTF --types-only", ours, command: extract)
    if !theirs.isEmpty { LayoutBench.report("pahole -F btf -C (same structs)", theirs, command: pahole) }
    let met = ours.map(\.seconds).median <= 0.02 && (ours.map(\.maxRSSKiB).max() ?? 0) <= 32 * 1024
    print("  target (0.02 s, 32 MiB): \(met ? "met" : "NOT met")")

    if let snapshotRAM {
      let memory = try RAMImage(path: snapshotRAM)
      var times: [Double] = []
      var notes: [Double] = []
      for _ in 0..<max(1, runs / 2) {
        t = monotonic()
        _ = KernelLocator.notes(in: memory, limit: 16)
        notes.append(monotonic() - t)
        t = monotonic()
        _ = try GuestKernelImage.layout(memory: memory)
        times.append(monotonic() - t)
      }
      if let hintsPath {
        var read: [Double] = []
        var unpack: [Double] = []
        var layout: [Double] = []
        for _ in 0..<max(1, runs / 2) {
          t = monotonic()
          let h = try HintRegionFile.read(hintsPath)
          let t1 = monotonic()
          guard let published = h.btf else { throw BenchError("\(hintsPath): the agent published no BTF") }
          let btf = try PublishedBTFBlob.parse(published)
          let t2 = monotonic()
          _ = try GuestKernelImage.layout(
            memory: memory, hintedNote: h.kernel.vmcoreinfo?.address.rawValue, btf: .init(btf, sourceName: "agent-hints"))
          layout.append(monotonic() - t2)
          read.append(t1 - t)
          unpack.append(t2 - t1)
        }
        print("  agent hints (\(hintsPath)): read region \(LayoutBench.format(read.median, digits: 4)) s, decompress + parse BTF \(LayoutBench.format(unpack.median, digits: 4)) s, kallsyms + types \(LayoutBench.format(layout.median, digits: 4)) s (medians)")
      }
      print("  guest memory (\(snapshotRAM)): layout median \(LayoutBench.format(times.median)) s (a full scan of RAM for vmcoreinfo, not needed when its note starts a page as the kernel allocates it: \(LayoutBench.format(notes.median)) s)")
    }
  }

  /// The vmlinuz's .BTF, with the decompression and kallsyms times.
  static func rawBTF(_ vmlinuz: String) throws -> (blob: [UInt8], decompress: Double, kallsyms: Double, symbols: Int) {
    let file = try MappedFile(path: vmlinuz)
    guard let all = file.bytes(at: 0, count: file.size) else { throw BenchError("\(vmlinuz): unreadable") }
    let t = monotonic()
    let elf = try KernelImageFile.decompressELF(all)
    let decompress = monotonic() - t
    return try elf.withUnsafeBytes { raw in
      let sections = try ElfSections(raw)
      guard let s = sections.section(".BTF"), let ro = sections.section(".rodata") else {
        throw BenchError("\(vmlinuz): no .BTF or .rodata")
      }
      let t0 = monotonic()
      let k = try Kallsyms.find(
        in: UnsafeRawBufferPointer(rebasing: raw[ro.offset..<(ro.offset + ro.size)]), base: ro.address,
        wanted: KernelLayout.symbolNames(.default))
      return (Array(raw[s.offset..<(s.offset + s.size)]), decompress, monotonic() - t0, k.symbolCount)
    }
  }

  static func monotonic() -> Double { MonotonicClock.seconds() }
}
