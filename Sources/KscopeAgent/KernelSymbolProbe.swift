import KscopeCore
import KscopeOS

/// Learns the kernel-symbol hints from inside the guest, as root, without a kernel module:
///
/// - addresses from /proc/kallsyms (`_text`, and the variables `page_offset_base`,
///   `vmemmap_base`, `vmalloc_base`, `phys_base`; real addresses need root and kptr_restrict < 2);
/// - the variables' values from /proc/kcore (an ELF core of kernel memory, root only);
/// - the vmcoreinfo note's physical address and size from /sys/kernel/vmcoreinfo, and its text
///   through the direct map in /proc/kcore (KERNELOFFSET, phys_base, pgtable_l5_enabled);
/// - phys_base, when no variable can be read, from /proc/iomem: "Kernel code" starts at
///   __pa(_text) = _text - __START_KERNEL_map + phys_base.
///
/// What cannot be learned stays nil; `sources` says where each value came from.
public struct KernelSymbolProbe {
  public var hints = KernelSymbolHints()
  /// "field=source" notes for the metadata, e.g. "kaslr_offset=vmcoreinfo".
  public var sources: [(String, String)] = []
  public var problems: [String] = []

  public init(kallsyms: String = "/proc/kallsyms", kcore: String = "/proc/kcore",
    vmcoreinfo: String = "/sys/kernel/vmcoreinfo", iomem: String = "/proc/iomem")
  {
    let wanted: Set<String> = ["_text", "page_offset_base", "vmemmap_base", "vmalloc_base", "phys_base"]
    var found: [String: UInt64] = [:]
    let ok = Files.forEachLine(kallsyms) { line in
      // "ffffffff81000000 T _text" (module symbols carry a "\t[module]" suffix: skipped).
      let parts = line.split(separator: 0x20, maxSplits: 2)
      guard parts.count == 3, parts[2].count <= 32, !parts[2].contains(0x09),
        let name = decodeUTF8(parts[2]), wanted.contains(name),
        let addr = UInt64(String(decoding: parts[0], as: UTF8.self), radix: 16)
      else { return true }
      if found[name] == nil { found[name] = addr }
      return found.count < wanted.count
    }
    if !ok { problems.append("\(kallsyms) unreadable") }
    // Non-root readers (or kptr_restrict=2) see zeros.
    found = found.filter { $0.value != 0 }
    if found.isEmpty && ok { problems.append("\(kallsyms) shows no addresses (not root, or kptr_restrict=2)") }

    if let t = found["_text"] {
      hints.text = KernelVirtualAddress(t)
      sources.append(("text", "kallsyms"))
    }
    let core = Kcore(path: kcore)
    if core == nil { problems.append("\(kcore) unreadable") }
    func variable(_ name: String) -> UInt64? {
      guard let a = found[name], let v = core?.u64(a), v != 0 else { return nil }
      return v
    }
    if let v = variable("page_offset_base") {
      hints.pageOffsetBase = KernelVirtualAddress(v)
      sources.append(("page_offset_base", "kcore"))
    }
    if let v = variable("vmemmap_base") {
      hints.vmemmapBase = KernelVirtualAddress(v)
      sources.append(("vmemmap_base", "kcore"))
    }
    if let v = variable("vmalloc_base") {
      hints.vmallocBase = KernelVirtualAddress(v)
      sources.append(("vmalloc_base", "kcore"))
    }
    if let a = found["phys_base"], let v = core?.u64(a) {
      hints.physBase = v
      sources.append(("phys_base", "kcore"))
    }

    // vmcoreinfo: "<address hex> <size hex>".
    var info: [String: String] = [:]
    if let text = Files.readText(vmcoreinfo, limit: 256) {
      let f = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
      if f.count == 2, let a = UInt64(f[0].replacing("0x", with: ""), radix: 16),
        let s = UInt64(f[1].replacing("0x", with: ""), radix: 16), a != 0, s > 0, s <= 1 << 16
      {
        hints.vmcoreinfo = (GuestPhysicalAddress(a), s)
        sources.append(("vmcoreinfo", "sysfs"))
        if let pob = hints.pageOffsetBase, let note = core?.read(pob.rawValue &+ a, count: Int(s)) {
          info = Self.parseVmcoreinfo(note)
          if !info.isEmpty { sources.append(("vmcoreinfo.text", "kcore")) }
        }
      }
    } else {
      problems.append("\(vmcoreinfo) unreadable")
    }

    if let k = info["KERNELOFFSET"].flatMap({ UInt64($0, radix: 16) }) {
      hints.kaslrOffset = k
      sources.append(("kaslr_offset", "vmcoreinfo"))
    } else if let t = hints.text, t.rawValue >= HintFormat.linkedText {
      // The link address assumes the default CONFIG_PHYSICAL_START (16 MiB), as Debian's.
      hints.kaslrOffset = t.rawValue - HintFormat.linkedText
      sources.append(("kaslr_offset", "_text-0xffffffff81000000"))
    }
    if hints.physBase == nil, let p = info["NUMBER(phys_base)"].flatMap({ Int64($0) }) {
      hints.physBase = UInt64(bitPattern: p)
      sources.append(("phys_base", "vmcoreinfo"))
    }
    if hints.physBase == nil, let t = hints.text, let text = Files.readText(iomem) {
      let map = ResourceMap(text: text)
      if map.usable, let code = map.entries.first(where: { $0.name == "Kernel code" }),
        t.rawValue >= HintFormat.startKernelMap
      {
        hints.physBase = code.range.lowerBound &- (t.rawValue - HintFormat.startKernelMap)
        sources.append(("phys_base", "iomem"))
      }
    }
    if let l5 = info["NUMBER(pgtable_l5_enabled)"].flatMap({ Int($0) }) {
      hints.pagingLevels = l5 == 1 ? 5 : 4
      sources.append(("paging_levels", "vmcoreinfo"))
    } else if let pob = hints.pageOffsetBase {
      // Below 0xffff800000000000 is not canonical with 4 levels: the direct map there means 5.
      hints.pagingLevels = pob.rawValue < 0xFFFF_8000_0000_0000 ? 5 : 4
      sources.append(("paging_levels", "page_offset_base"))
    }
    // Values a reader would refuse are better left out than published.
    if let p = hints.physBase, p & 0xFFF != 0 { hints.physBase = nil }
    if let k = hints.kaslrOffset, k >= 1 << 30 || k & 0xFFF != 0 { hints.kaslrOffset = nil }
  }

  /// The KEY=VALUE lines of a vmcoreinfo ELF note ("VMCOREINFO" name, text descriptor).
  static func parseVmcoreinfo(_ note: [UInt8]) -> [String: String] {
    let r = ByteReader(note)
    guard let nameSize = try? r.u32(at: 0), let descSize = try? r.u32(at: 4), nameSize <= 64,
      descSize <= UInt32(note.count)
    else { return [:] }
    let descAt = 12 + ((Int(nameSize) + 3) & ~3)
    guard descAt <= note.count else { return [:] }
    let desc = note[descAt..<min(note.count, descAt + Int(descSize))]
    var out: [String: String] = [:]
    for line in desc.split(separator: 0x0A) {
      guard let eq = line.firstIndex(of: 0x3D) else { continue }
      let k = String(decoding: line[line.startIndex..<eq], as: UTF8.self)
      let v = String(decoding: line[(eq + 1)...], as: UTF8.self)
      out[k] = v
    }
    return out
  }
}
