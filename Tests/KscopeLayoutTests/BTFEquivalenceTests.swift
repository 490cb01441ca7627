import Foundation
import KscopeDebugInfo
import KscopeKernelImage
import KscopeLayout
import KscopeOS
import KscopeTestSupport
import Testing

/// The same answers from the kernel's own BTF + kallsyms (its vmlinuz, as shipped) as from the
/// -dbg package's DWARF + .symtab, for the pinned kernels.
@Suite(.serialized) struct BTFEquivalenceTests {
  /// The pinned kernels, and an older 6.1 ABI whose layout the project never recorded
  /// (fetched with host/fetch-kernels.sh when it is not cached).
  @Test(arguments: ["6.1", "6.12", BTFEquivalenceTests.olderABI]) func vmlinuzLayoutEqualsDWARFLayout(series: String) throws {
    if series == Self.olderABI { try KernelCache.fetchIfMissing(series) }
    guard KernelCache.release(series) != nil else { return }
    let dir = KernelCache.directory(series)
    let dwarf = try LayoutExtractor.extract(vmlinux: dir + "/vmlinux")
    let btf = try KernelImageFile.layout(path: dir + "/vmlinuz")
    #expect(btf.sources.map(\.kind) == ["btf", "kallsyms"])
    #expect(btf.buildID == dwarf.buildID && btf.release == dwarf.release)
    let diffs = btf.differences(from: dwarf)
    #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    // The flattening is real and limited to arrays: xa_node.marks is [3][1] in DWARF.
    #expect(btf.userTypes["xa_node"]?.member(named: "marks")?.type != dwarf.userTypes["xa_node"]?.member(named: "marks")?.type)
    // The facts the analyzer derives agree too.
    #expect(try btf.pageTypeEncoding() == dwarf.pageTypeEncoding())
  }

  static let olderABI = "6.1.0-47-cloud-amd64"

  /// A raw BTF blob (what /sys/kernel/btf/vmlinux serves) gives the same types, and no symbols;
  /// without `enum pagetype` (6.1) it names no release, so no page_type encoding: refused.
  @Test func rawBTFGivesTheSameTypes() throws {
    for series in ["6.12", "6.1"] {
      guard KernelCache.release(series) != nil else {
        Issue.record("no \(series) kernel in the cache: run host/setup.sh")
        return
      }
      let dir = KernelCache.directory(series)
      let elf = try Data(contentsOf: URL(fileURLWithPath: dir + "/vmlinuz")).withUnsafeBytes {
        try KernelImageFile.decompressELF($0)
      }
      let blob = try elf.withUnsafeBytes { raw -> [UInt8] in
        let s = try ElfSections(raw).section(".BTF")!
        return Array(raw[s.offset..<(s.offset + s.size)])
      }
      let path = FileManager.default.temporaryDirectory.appendingPathComponent("kscope-btf-\(getpid())-\(series)").path
      #expect(FileManager.default.createFile(atPath: path, contents: Data(blob)))
      defer { try? FileManager.default.removeItem(atPath: path) }
      #expect(throws: BTFError.self) { try KernelImageFile.layout(path: path) }
      if series == "6.1" {
        do {
          _ = try KernelImageFile.layout(path: path, typesOnly: true)
          Issue.record("6.1 raw BTF gave a layout without its page_type encoding")
        } catch {
          #expect(error.description.contains("enum pagetype"))
        }
        continue
      }
      let typesOnly = try KernelImageFile.layout(path: path, typesOnly: true)
      let full = try KernelImageFile.layout(path: dir + "/vmlinuz")
      #expect(typesOnly.userTypes == full.userTypes && typesOnly.enums == full.enums)
      #expect(typesOnly.symbols.isEmpty)
      // The command does the same (its validator asks a types-only layout for no symbols).
      let out = path + ".json"
      defer { try? FileManager.default.removeItem(atPath: out) }
      let r = try runKscope(["layout", "extract", path, "--types-only", "-o", out, "--json"])
      #expect(r.status == 0, "layout extract --types-only: \(r.stderr)")
      let written = try LayoutFile.read(out)
      #expect(written.userTypes == full.userTypes && written.symbols.isEmpty)
    }
  }

  /// /sys/kernel/btf/vmlinux cannot be mapped (a sysfs binary attribute): it is read instead,
  /// so the help's example works. This host's own kernel (CI's) publishes its BTF there.
  @Test func theRunningKernelsBTFFromSysfs() throws {
    let sysfs = "/sys/kernel/btf/vmlinux"
    guard FileManager.default.fileExists(atPath: sysfs) else {
      Issue.record("this host's kernel publishes no BTF at \(sysfs) (CONFIG_DEBUG_INFO_BTF)")
      return
    }
    let file = try MappedFile(path: sysfs)
    #expect(file.size > 1 << 20 && file.bytes(at: 0, count: 2).map(Array.init) == [0x9f, 0xeb])
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("kscope-sysfs-btf-\(getpid()).json").path
    defer { try? FileManager.default.removeItem(atPath: out) }
    // The command reads it too. Whether the host kernel's types have all kscope needs depends
    // on its version (6.18's struct page has no `index`): a layout, or a line naming what is
    // missing; never a failure to read the file.
    let r = try runKscope(["layout", "extract", sysfs, "--types-only", "-o", out])
    if r.status == 0 {
      #expect(try LayoutFile.read(out).userTypes["page"] != nil)
    } else {
      #expect(r.stderr.contains("missing") && !r.stderr.contains("mmap"), "layout extract \(sysfs): \(r.stderr)")
    }
  }
}
