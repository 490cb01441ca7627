import Foundation
import KscopeAnalyzer
import KscopeCore
import KscopeKernelImage
import KscopeLayout
import KscopeVM

/// Layouts for guests whose kernel has no debug info on this machine, from the kernel's own
/// BTF and kallsyms, in order: (1) the BTF the guest agent published in its hints, with
/// kallsyms from guest memory (the hints say where vmcoreinfo is), (2) the guest's memory (the
/// .BTF blob and kallsyms tables in its kernel image, found through vmcoreinfo), (3) the guest
/// kernel's vmlinuz, when the host has it. The origin string names which one was used; it goes
/// into the map (`source.layout`) and the color command's summary.
enum BTFLayoutSource {
  static func layout(
    ramPath: String, regions: [GuestRAMRegion], kernel: SnapshotManifest.Kernel?, cache: String,
    hints: Result<HintSet, HintError>? = nil
  ) throws -> (KernelLayout, String) {
    var reasons: [String] = []
    var hintNote = ""
    switch hints {
    case .success(let h):
      do {
        return try fromHints(h, ramPath: ramPath, regions: regions, kernel: kernel)
      } catch {
        hintNote = "; agent BTF not used: \(error)"
        reasons.append("agent hints: \(error)")
      }
    case .failure(let e):
      if e != .empty { reasons.append("agent hints: \(e)") }
    case nil: break
    }
    do {
      let memory = try RAMImage(path: ramPath, regions: regions)
      let found = try GuestKernelImage.layout(memory: memory, buildID: kernel?.buildID)
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
            reasons.append(
              "\(vmlinuz) is build \(layout.buildID ?? "?"), the guest \(kernel.buildID)")
            continue
          }
          return (layout, "btf+kallsyms:\(vmlinuz)")
        } catch {
          reasons.append("\(error)")
        }
      }
    }
    throw CommandFailure(
      "no layout from the kernel's own BTF (\(reasons.joined(separator: "; "))): give --layout or --vmlinux, or --fetch-debug to download the debug package"
    )
  }

  /// The agent's BTF (decompressed, checksummed, parsed) with kallsyms and vmcoreinfo from
  /// guest memory. The hints must name the snapshot's kernel when both name one.
  static func fromHints(
    _ h: HintSet, ramPath: String, regions: [GuestRAMRegion], kernel: SnapshotManifest.Kernel?
  ) throws -> (KernelLayout, String) {
    guard let published = h.btf else { throw BTFError("the agent published no BTF") }
    let hintBuild = h.buildID.isEmpty ? nil : h.buildIDHex
    if let hintBuild, let kernel, hintBuild != kernel.buildID {
      throw BTFError(
        "the hints are for build \(hintBuild), the snapshot's kernel is \(kernel.buildID)")
    }
    let btf = try PublishedBTFBlob.parse(published)
    let memory = try RAMImage(path: ramPath, regions: regions)
    let found = try GuestKernelImage.layout(
      memory: memory, hintedNote: h.kernel.vmcoreinfo?.address.rawValue,
      buildID: kernel?.buildID ?? hintBuild,
      btf: .init(btf, sourceName: "agent-hints"))
    let origin =
      "btf+kallsyms:agent-hints (BTF from the guest agent, generation \(h.generation): \(published.size) bytes, zstd \(published.data.count); \(found.kallsymsSymbols) kallsyms symbols, \(found.layout.sources.last?.name ?? ""); vmcoreinfo at 0x\(String(found.vmcoreinfoAddress, radix: 16)))"
    return (found.layout, origin)
  }
}
