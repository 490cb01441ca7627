import Foundation
import KscopeCore
import KscopeAnalyzer
import KscopeDebugInfo
import KscopeHints
import KscopeLayout
import KscopeOS
import KscopeVM

/// What `kscope color SNAPSHOT_OR_RAM` colors: the guest RAM (with its guest-physical layout)
/// and the kernel layout to read it with.
struct GuestSource {
  var ramPath: String
  var regions: [GuestRAMRegion]
  var layout: KernelLayout
  /// Where the layout came from, for the summary.
  var layoutOrigin: String
  /// The snapshot's hint region, when there is one.
  var hintsPath: String?
  /// The opened snapshot (its files are read through it, never by path again).
  var snapshot: Snapshot? = nil
  /// The hints as read for the layout (BTFLayoutSource), so they are read once.
  var hintsRead: (path: String, hints: HintSet)? = nil

  /// A snapshot directory (manifest.json) or a raw RAM file. For a snapshot, the layout is
  /// found from its manifest's kernel unless given: the layout cache, the cached debug
  /// package, or a fetch of that exact kernel version (host/fetch-kernels.sh).
  static func resolve(
    _ source: String, layoutPath: String?, vmlinux: String?, flat: Bool, btf: Bool = false, fetchDebug: Bool = false,
    hints: String? = nil, useHints: Bool = true
  ) throws -> GuestSource {
    // The agent's hints may carry the kernel's BTF: read (seqlock, validated) only if a layout
    // from BTF is needed, and kept for the merge.
    var hintsRead: (path: String, hints: HintSet)? = nil
    func hintReader(_ file: @escaping () throws(HintError) -> (String, HintSet)) -> () -> Result<HintSet, HintError> {
      {
        do throws(HintError) {
          let (path, h) = try file()
          hintsRead = (path, h)
          return .success(h)
        } catch { return .failure(error) }
      }
    }
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else {
      throw CommandFailure("\(source): no such file or snapshot directory")
    }
    if isDir.boolValue {
      // Everything in a snapshot is untrusted: the manifest is validated and every file is
      // opened inside the directory without following links (KscopeVM.Snapshot).
      let snap: Snapshot
      do {
        snap = try Snapshot.open(source)
        try snap.checkFitsHost()
      } catch {
        throw CommandFailure("\(source): not a usable snapshot: \(error)")
      }
      let manifest = snap.manifest
      let regions = manifest.memoryLayout.map {
        GuestRAMRegion(start: $0.guestPhysicalStart, size: $0.size, fileOffset: $0.fileOffset)
      }
      // BTF is read through the RAM file this snapshot opened (never by path again).
      let ram = ("/proc/self/fd/\(snap.ram.fd)", regions)
      let readHints = hintReader { () throws(HintError) in
        if let hints { return (hints, try HintRegionFile.read(hints)) }
        return (snap.hints.path, try HintRegionFile.read(snap.hints))
      }
      let (layout, origin) = try loadLayout(
        layoutPath: layoutPath, vmlinux: vmlinux, kernel: manifest.kernel, btfFrom: ram, btfOnly: btf,
        fetchDebug: fetchDebug, hints: useHints ? readHints : nil)
      return GuestSource(
        ramPath: snap.ram.path, regions: regions, layout: layout, layoutOrigin: origin,
        hintsPath: snap.hints.path, snapshot: snap, hintsRead: hintsRead)
    }
    guard layoutPath != nil || vmlinux != nil || btf else {
      throw CommandFailure("coloring the raw RAM file \(source) needs the guest kernel's layout: --layout FILE, --vmlinux FILE or --btf")
    }
    let size = (try? FileManager.default.attributesOfItem(atPath: source)[.size] as? UInt64) ?? 0
    // A raw file from `kscope vm` (or any q35 QEMU guest) splits RAM around the PCI hole.
    let regions =
      flat
      ? [GuestRAMRegion(start: 0, size: size, fileOffset: 0)]
      : GuestMemoryRegion.q35Layout(ramSize: size).map {
        GuestRAMRegion(start: $0.guestPhysicalStart, size: $0.size, fileOffset: $0.fileOffset)
      }
    let readHints = hints.map { path in hintReader { () throws(HintError) in (path, try HintRegionFile.read(path)) } }
    let (layout, origin) = try loadLayout(
      layoutPath: layoutPath, vmlinux: vmlinux, kernel: nil, btfFrom: (source, regions), btfOnly: btf,
      hints: useHints ? readHints : nil)
    return GuestSource(
      ramPath: source, regions: regions, layout: layout, layoutOrigin: origin, hintsPath: nil, hintsRead: hintsRead)
  }

  /// The guest RAM, mapped: a snapshot's from the file it opened, a raw file by its path.
  func openMemory() throws -> RAMImage {
    guard let snapshot else { return try RAMImage(path: ramPath, regions: regions) }
    return try RAMImage(file: try snapshot.ram.map(), regions: regions)
  }

  /// The hint region, read with the seqlock reader and validated: `explicit` (the user's own
  /// --hints file), else the snapshot's.
  func readHints(_ explicit: String?) throws(HintError) -> (path: String, hints: HintSet)? {
    if let hintsRead { return hintsRead }
    if let explicit { return (explicit, try HintRegionFile.read(explicit)) }
    guard let snapshot else { return nil }
    return (snapshot.hints.path, try HintRegionFile.read(snapshot.hints))
  }

  /// Why hints cannot describe this guest, or nil (`HintFit`).
  func hintMismatch(_ hints: HintSet, memory: some PhysicalMemory) -> String? {
    HintFit.mismatch(hints, guestEnd: memory.end, regionSize: snapshot?.manifest.hintSize)
  }

  /// Without debug info on the machine, the layout comes from the kernel's own BTF and
  /// kallsyms (`btfFrom`, BTFLayoutSource); the debug package is downloaded only on request.
  static func loadLayout(
    layoutPath: String?, vmlinux: String?, kernel: SnapshotManifest.Kernel?,
    btfFrom ram: (path: String, regions: [GuestRAMRegion])? = nil, btfOnly: Bool = false, fetchDebug: Bool = false,
    hints: (() -> Result<HintSet, HintError>)? = nil
  ) throws -> (KernelLayout, String) {
    if let layoutPath { return (try checked(LayoutFile.read(layoutPath), layoutPath), layoutPath) }
    if let vmlinux { return (try checked(LayoutExtractor.extract(vmlinux: vmlinux), vmlinux), vmlinux) }
    // The build id names a file in the cache: hex only (the manifest's validation said so;
    // checked again here, where it becomes a path).
    if let kernel, !SnapshotManifest.isBuildID(kernel.buildID) {
      throw CommandFailure("kernel build id '\(TerminalSafe.oneLine(kernel.buildID, limit: 200))' is not hexadecimal")
    }
    let cache = cacheRoot()
    if btfOnly, let ram {
      let (layout, origin) = try BTFLayoutSource.layout(
        ramPath: ram.path, regions: ram.regions, kernel: kernel, cache: cache, hints: hints?())
      return (try checked(layout, origin), origin)
    }
    guard let kernel else { throw CommandFailure("no layout given") }
    let cached = "\(cache)/layouts/\(kernel.buildID).json"
    if let layout = try? LayoutFile.read(cached), layout.buildID == kernel.buildID,
      (try? layout.validate(request: .default)) != nil
    {
      return (layout, cached)
    }
    // kscope's own kernel cache, by release (validated as a plain name) or by build id: never
    // a directory named by the manifest.
    var candidates = ["\(cache)/kernels/\(kernel.release)/vmlinux"]
    if let k = try? GuestKernel.find(buildID: kernel.buildID, release: kernel.release) {
      candidates.insert(k.vmlinux, at: 0)
    }
    if !candidates.contains(where: { FileManager.default.fileExists(atPath: $0) }) {
      if !fetchDebug, let ram {
        let (layout, origin) = try BTFLayoutSource.layout(
        ramPath: ram.path, regions: ram.regions, kernel: kernel, cache: cache, hints: hints?())
      return (try checked(layout, origin), origin)
      }
      try fetchKernel(kernel.release)
      candidates = ["\(cache)/kernels/\(kernel.release)/vmlinux"]
    }
    for vmlinux in candidates where FileManager.default.fileExists(atPath: vmlinux) {
      let layout = try checked(LayoutExtractor.extract(vmlinux: vmlinux), vmlinux)
      guard layout.buildID == kernel.buildID else { continue }
      try? FileManager.default.createDirectory(atPath: "\(cache)/layouts", withIntermediateDirectories: true)
      try? Files.writeAtomically(Array(layout.isfText().utf8), to: cached)
      return (layout, vmlinux)
    }
    throw CommandFailure(
      "no debug info for kernel \(kernel.release) build \(kernel.buildID): give --layout or --vmlinux")
  }

  /// Every layout, whatever its origin, passes the one validator before a walker sees it.
  static func checked(_ layout: @autoclosure () throws -> KernelLayout, _ origin: String) throws -> KernelLayout {
    let l = try layout()
    do { try l.validate(request: .default) } catch {
      throw CommandFailure("\(TerminalSafe.oneLine(origin)): unusable layout: \(error)")
    }
    return l
  }

  static func cacheRoot() -> String {
    let env = ProcessInfo.processInfo.environment["KSCOPE_CACHE"]
    return env?.isEmpty == false ? env! : "/var/cache/kscope"
  }

  /// Runs host/fetch-kernels.sh for an exact version (found beside the executable or the
  /// current directory, as in a checkout of kscope).
  static func fetchKernel(_ version: String) throws {
    let starts = [
      FileManager.default.currentDirectoryPath,
      URL(fileURLWithPath: CommandLine.arguments.first ?? "/").resolvingSymlinksInPath().deletingLastPathComponent().path,
    ]
    for start in starts {
      var url = URL(fileURLWithPath: start)
      while url.path != "/" {
        let script = url.appendingPathComponent("host/fetch-kernels.sh").path
        if FileManager.default.isExecutableFile(atPath: script) {
          let p = Process()
          p.executableURL = URL(fileURLWithPath: script)
          p.arguments = [version]
          p.standardOutput = FileHandle.standardError
          try p.run()
          p.waitUntilExit()
          guard p.terminationStatus == 0 else {
            throw CommandFailure("fetching kernel \(version) failed (host/fetch-kernels.sh \(version))")
          }
          return
        }
        url.deleteLastPathComponent()
      }
    }
    throw CommandFailure("kernel \(version) is not cached and host/fetch-kernels.sh was not found: run it, or give --vmlinux")
  }
}
