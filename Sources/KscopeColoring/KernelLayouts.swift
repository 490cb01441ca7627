import Foundation
import KscopeAnalyzer
import KscopeCore
import KscopeDebugInfo
import KscopeHints
import KscopeKernelImage
import KscopeLayout
import KscopeOS
import KscopeSnapshot
import KscopeVM

/// Where the kernel layout for a guest comes from: the caller's choice, given to `color`.
public protocol LayoutProvider {
  /// The layout to read `input` with, and where it came from (it goes into the map's
  /// `source.layout`). `color` validates whatever is returned (`ValidatedLayout`) before a
  /// walker sees it.
  func layout(for input: ColoringInput) throws -> (layout: KernelLayout, origin: String)
}

/// kscope's own resolution, in order: a layout file (`--layout`), a vmlinux with DWARF
/// (`--vmlinux`), the kernel's own BTF and kallsyms (`--btf`); for a snapshot, the layout cache
/// by build id, the cached debug info of that kernel, else its BTF (guest memory, then its
/// vmlinuz), or with `fetchDebug` a download of that exact kernel (host/fetch-kernels.sh).
public struct KernelLayouts: LayoutProvider {
  public var layoutFile: String?
  public var vmlinux: String?
  public var btfOnly: Bool
  public var fetchDebug: Bool
  /// kscope's cache ($KSCOPE_CACHE, default /var/cache/kscope): layouts/, kernels/.
  public var cache: String
  /// Where the guest agent's hints are (they may carry the kernel's BTF): the same choice as
  /// the coloring's.
  public var hints: ColoringOptions.Hints

  public init(
    layoutFile: String? = nil, vmlinux: String? = nil, btfOnly: Bool = false, fetchDebug: Bool = false,
    cache: String = KernelLayouts.cacheRoot(), hints: ColoringOptions.Hints = .fromSnapshot
  ) {
    self.layoutFile = layoutFile
    self.vmlinux = vmlinux
    self.btfOnly = btfOnly
    self.fetchDebug = fetchDebug
    self.cache = cache
    self.hints = hints
  }

  public static func cacheRoot() -> String { GuestKernel.kscopeCache() }

  public func layout(for input: ColoringInput) throws -> (layout: KernelLayout, origin: String) {
    if let layoutFile { return (try LayoutFile.read(layoutFile), layoutFile) }
    if let vmlinux { return (try LayoutExtractor.extract(vmlinux: vmlinux), vmlinux) }
    if btfOnly { return try btfLayout(input) }
    guard let kernel = input.kernel else {
      throw ColoringError(
        "coloring the raw RAM file \(input.ramPath) needs the guest kernel's layout: --layout FILE, --vmlinux FILE or --btf")
    }
    // The build id names a file in the cache: hex only (the manifest's validation said so;
    // checked again here, where it becomes a path).
    guard SnapshotManifest.isBuildID(kernel.buildID) else {
      throw ColoringError("kernel build id '\(TerminalSafe.oneLine(kernel.buildID, limit: 200))' is not hexadecimal")
    }
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
      if !fetchDebug { return try btfLayout(input) }
      try KernelLayouts.fetchKernel(kernel.release)
      candidates = ["\(cache)/kernels/\(kernel.release)/vmlinux"]
    }
    for vmlinux in candidates where FileManager.default.fileExists(atPath: vmlinux) {
      let layout = try LayoutExtractor.extract(vmlinux: vmlinux)
      guard layout.buildID == kernel.buildID else { continue }
      // Only a layout that passes the validator is cached.
      if (try? layout.validate(request: .default)) != nil {
        try? FileManager.default.createDirectory(atPath: "\(cache)/layouts", withIntermediateDirectories: true)
        try? Files.writeAtomically(layout.isfBytes(), to: cached)
      }
      return (layout, vmlinux)
    }
    throw ColoringError(
      "no debug info for kernel \(kernel.release) build \(kernel.buildID): give --layout or --vmlinux")
  }

  /// Layouts for guests whose kernel has no debug info on this machine, from the kernel's own
  /// BTF and kallsyms, in order: (1) the BTF the guest agent published in its hints, with
  /// kallsyms from guest memory (the hints say where vmcoreinfo is), (2) the guest's memory (the
  /// .BTF blob and kallsyms tables in its kernel image, found through vmcoreinfo), (3) the guest
  /// kernel's vmlinuz, when the host has it. The origin string names which one was used; it
  /// goes into the map (`source.layout`) and the color command's summary.
  func btfLayout(_ input: ColoringInput) throws -> (layout: KernelLayout, origin: String) {
    let kernel = input.kernel
    var reasons: [String] = []
    var hintNote = ""
    switch Coloring.readHintRegion(input, hints) {
    case .success(let h)?:
      do {
        return try fromHints(h, input: input)
      } catch {
        hintNote = "; agent BTF not used: \(error)"
        reasons.append("agent hints: \(error)")
      }
    case .failure(let e)?:
      if e != .empty { reasons.append("agent hints: \(e)") }
    case nil: break
    }
    do {
      let found = try GuestKernelImage.layout(memory: input.memory, buildID: kernel?.buildID)
      let origin =
        "btf+kallsyms:guest-memory (BTF at 0x\(String(found.btfAddress, radix: 16)), \(found.btfBytes) bytes; \(found.kallsymsSymbols) kallsyms symbols, \(found.layout.sources.last?.name ?? ""); vmcoreinfo at 0x\(String(found.vmcoreinfoAddress, radix: 16)))"
        + hintNote
      return (found.layout, origin)
    } catch {
      reasons.append("\(error)")
    }
    if let kernel {
      for vmlinuz in [kernel.directory + "/vmlinuz", "\(cache)/kernels/\(kernel.release)/vmlinuz"]
      where FileManager.default.fileExists(atPath: vmlinuz) {
        do {
          let layout = try KernelImageFile.layout(path: vmlinuz)
          guard layout.buildID == kernel.buildID else {
            reasons.append("\(vmlinuz) is build \(layout.buildID ?? "?"), the guest \(kernel.buildID)")
            continue
          }
          return (layout, "btf+kallsyms:\(vmlinuz)")
        } catch {
          reasons.append("\(error)")
        }
      }
    }
    throw ColoringError(
      "no layout from the kernel's own BTF (\(reasons.joined(separator: "; "))): give --layout or --vmlinux, or --fetch-debug to download the debug package")
  }

  /// The agent's BTF (decompressed, checksummed, parsed) with kallsyms and vmcoreinfo from
  /// guest memory. The hints must name the snapshot's kernel when both name one.
  func fromHints(_ h: HintSet, input: ColoringInput) throws -> (layout: KernelLayout, origin: String) {
    let kernel = input.kernel
    guard let published = h.btf else { throw BTFError("the agent published no BTF") }
    let hintBuild = h.buildID.isEmpty ? nil : h.buildIDHex
    if let hintBuild, let kernel, hintBuild != kernel.buildID {
      throw BTFError("the hints are for build \(hintBuild), the snapshot's kernel is \(kernel.buildID)")
    }
    let btf = try PublishedBTFBlob.parse(published)
    let found = try GuestKernelImage.layout(
      memory: input.memory, hintedNote: h.kernel.vmcoreinfo?.address.rawValue,
      buildID: kernel?.buildID ?? hintBuild, btf: .init(btf, sourceName: "agent-hints"))
    let origin =
      "btf+kallsyms:agent-hints (BTF from the guest agent, generation \(h.generation): \(published.size) bytes, zstd \(published.data.count); \(found.kallsymsSymbols) kallsyms symbols, \(found.layout.sources.last?.name ?? ""); vmcoreinfo at 0x\(String(found.vmcoreinfoAddress, radix: 16)))"
    return (found.layout, origin)
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
            throw ColoringError("fetching kernel \(version) failed (host/fetch-kernels.sh \(version))")
          }
          return
        }
        url.deleteLastPathComponent()
      }
    }
    throw ColoringError("kernel \(version) is not cached and host/fetch-kernels.sh was not found: run it, or give --vmlinux")
  }
}
