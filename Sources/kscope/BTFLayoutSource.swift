import Foundation
import KscopeAnalyzer
import KscopeKernelImage
import KscopeLayout
import KscopeVM

/// Layouts for guests whose kernel has no debug info on this machine, from the kernel's own
/// BTF and kallsyms, in order: (1) the guest's memory (the .BTF blob and kallsyms tables in its
/// kernel image, found through vmcoreinfo), (2) the guest kernel's vmlinuz, when the host has
/// it. The origin string names which one was used; it goes into the map (`source.layout`).
enum BTFLayoutSource {
  static func layout(
    ramPath: String, regions: [GuestRAMRegion], kernel: SnapshotManifest.Kernel?, cache: String
  ) throws -> (KernelLayout, String) {
    var reasons: [String] = []
    do {
      let memory = try RAMImage(path: ramPath, regions: regions)
      let found = try GuestKernelImage.layout(memory: memory, buildID: kernel?.buildID)
      let origin =
        "btf+kallsyms:guest-memory (BTF at 0x\(String(found.btfAddress, radix: 16)), \(found.btfBytes) bytes; \(found.kallsymsSymbols) kallsyms symbols, \(found.layout.sources.last?.name ?? ""); vmcoreinfo at 0x\(String(found.vmcoreinfoAddress, radix: 16)))"
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
    throw CommandFailure(
      "no layout from the kernel's own BTF (\(reasons.joined(separator: "; "))): give --layout or --vmlinux, or --fetch-debug to download the debug package")
  }
}
