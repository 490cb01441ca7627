import KscopeCore
import KscopeSnapshot
import KscopeLayout

/// Where the running guest kernel is: its KASLR slide, phys_base, paging mode and the bases of
/// the direct map and vmemmap, learned from the guest's vmcoreinfo and checked against the
/// layout (same build, consistent symbols).
public struct KernelLocation: Sendable {
  public var vmcoreinfo: VMCoreInfo
  /// Where the vmcoreinfo note was found.
  public var notePhysicalAddress: UInt64
  public var slide: UInt64
  public var physBase: UInt64
  public var fiveLevel: Bool
  /// Physical address of init_top_pgt (the kernel's top-level page table).
  public var topTable: UInt64
  public var pageOffsetBase: UInt64
  public var vmemmapBase: UInt64
}

/// The kernel image mapping of x86-64 (`__START_KERNEL_map`): kernel text and data are at
/// virtual START + (physical - phys_base), within a 1 GiB window.
public let startKernelMap: UInt64 = 0xffff_ffff_8000_0000
let kernelImageWindow: UInt64 = 1 << 30

public enum KernelLocator {
  /// The ELF note name the kernel gives vmcoreinfo.
  static let noteName: [UInt8] = Array("VMCOREINFO".utf8) + [0]

  /// The vmcoreinfo note whose ELF note header starts at `at`, if there is one.
  static func note(at header: UInt64, in memory: any PhysicalMemory) -> VMCoreInfo? {
    // namesz = 11, descsz, type 0, "VMCOREINFO\0" padded to 12, then the text.
    guard memory.u32(at: header) == 11, let descsz = memory.u32(at: header + 4), descsz > 0,
      descsz <= UInt32(VMCoreInfo.maxBytes), memory.u32(at: header + 8) == 0,
      memory.bytes(at: header + 12, count: noteName.count) == noteName,
      let desc = memory.bytes(at: header + 24, count: Int(descsz))
    else { return nil }
    return VMCoreInfo(text: desc[...].prefix { $0 != 0 })
  }

  /// Every vmcoreinfo note in memory (bounded), parsed: a scan of all of RAM.
  public static func notes(in memory: any PhysicalMemory, limit: Int = 64) -> [(UInt64, VMCoreInfo)] {
    var out: [(UInt64, VMCoreInfo)] = []
    var from: UInt64 = 0
    var hits = 0
    while hits < 4096, out.count < limit, let at = memory.find(noteName, from: from) {
      hits += 1
      from = at + 1
      guard at >= 12, let info = note(at: at - 12, in: memory) else { continue }
      out.append((at - 12, info))
    }
    return out
  }

  /// `vmcoreinfo_note` is a pointer to the note (a page of its own), and it and
  /// `page_offset_base` sit at their link-time physical addresses plus the physical KASLR
  /// offset, a multiple of 2 MiB (CONFIG_PHYSICAL_ALIGN is). Probing those few places for a
  /// consistent pair finds the kernel's own note without reading all of RAM.
  static func probeAligned(
    in memory: any PhysicalMemory, layout: KernelLayout
  ) throws(AnalyzerError) -> KernelLocation? {
    guard let noteVar = layout.symbol("vmcoreinfo_note")?.rawValue, noteVar >= startKernelMap,
      let pobVar = layout.symbol("page_offset_base")?.rawValue, pobVar >= startKernelMap
    else { return nil }
    let step: UInt64 = 2 << 20
    var delta: UInt64 = 0
    var probes = 0
    var mismatch: String? = nil
    while noteVar - startKernelMap &+ delta < memory.end, probes < 1 << 20 {
      probes += 1
      defer { delta += step }
      // A probe into a hole of a sparse RAM file reads zeros: skipped without touching it.
      guard memory.mayHoldData(at: noteVar - startKernelMap + delta, count: 8),
        memory.mayHoldData(at: pobVar - startKernelMap + delta, count: 8)
      else { continue }
      guard let pointer = memory.u64(at: noteVar - startKernelMap + delta),
        let pob = memory.u64(at: pobVar - startKernelMap + delta),
        pointer >> 63 == 1, pob >> 63 == 1, pointer > pob, pointer & 3 == 0
      else { continue }
      let at = pointer - pob
      guard let info = note(at: at, in: memory) else { continue }
      // A note found through the kernel's own pointer that names another build: the layout
      // is for a different kernel (unless a later probe finds a consistent one).
      if let want = layout.buildID, info.buildID != want {
        mismatch = mismatch ?? info.buildID ?? noBuildID
        continue
      }
      if let location = try? locate(info, at: at, in: memory, layout: layout),
        location.pageOffsetBase == pob
      {
        return location
      }
    }
    if let mismatch { throw .kernelMismatch(image: mismatch, layout: layout.buildID ?? "unknown") }
    return nil
  }

  /// What a note without BUILD-ID is called in a mismatch: a layout with a build id is never
  /// used on a kernel that cannot show the same one.
  static let noBuildID = "none (its vmcoreinfo has no BUILD-ID)"

  /// Finds the kernel, preferring the note at the place the layout says `vmcoreinfo_note` is.
  public static func locate(
    in memory: any PhysicalMemory, layout: KernelLayout, hintedNote: UInt64? = nil
  ) throws(AnalyzerError) -> KernelLocation {
    // The agent's hint names the note's physical address: checked like any other candidate.
    if let at = hintedNote, let info = note(at: at, in: memory),
      layout.buildID == nil || info.buildID == layout.buildID,
      let location = try? locate(info, at: at, in: memory, layout: layout)
    {
      return location
    }
    if let found = try probeAligned(in: memory, layout: layout) { return found }
    let candidates = notes(in: memory)
    guard !candidates.isEmpty else { throw .noVMCoreInfo }
    var mismatch: String? = nil
    var best: KernelLocation? = nil
    for (at, info) in candidates {
      if let want = layout.buildID, info.buildID != want {
        mismatch = info.buildID ?? noBuildID
        continue
      }
      guard let location = try? locate(info, at: at, in: memory, layout: layout) else { continue }
      // The kernel's own note is the one its vmcoreinfo_note pointer names.
      if let noteVar = layout.symbol("vmcoreinfo_note")?.rawValue,
        let pointer = memory.u64(at: noteVar &+ location.slide &- startKernelMap &+ location.physBase),
        pointer &- location.pageOffsetBase == at
      {
        return location
      }
      if best == nil { best = location }
    }
    if let best { return best }
    if let mismatch { throw .kernelMismatch(image: mismatch, layout: layout.buildID ?? "unknown") }
    throw .noVMCoreInfo
  }

  static func locate(
    _ info: VMCoreInfo, at: UInt64, in memory: any PhysicalMemory, layout: KernelLayout
  ) throws(AnalyzerError) -> KernelLocation {
    guard let stextLink = layout.symbol("_stext")?.rawValue else {
      throw .layout("no symbol _stext")
    }
    let slide: UInt64
    if let offset = info.kernelOffset {
      slide = offset
    } else if let stext = info.symbol("_stext") {
      slide = stext &- stextLink
    } else {
      throw .missingFact("vmcoreinfo has neither KERNELOFFSET nor SYMBOL(_stext)")
    }
    // The slide must agree with where vmcoreinfo says _stext is.
    if let stext = info.symbol("_stext"), stext != stextLink &+ slide {
      throw .missingFact("vmcoreinfo's _stext disagrees with its KERNELOFFSET")
    }
    guard let physBase = info.physBase else { throw .missingFact("vmcoreinfo has no NUMBER(phys_base)") }
    func imagePA(_ link: UInt64) -> UInt64 { link &+ slide &- startKernelMap &+ physBase }
    guard let top = layout.symbol("init_top_pgt")?.rawValue else { throw .layout("no symbol init_top_pgt") }
    let fiveLevel: Bool
    if let l5 = info.fiveLevelPaging {
      fiveLevel = l5
    } else if let sym = layout.symbol("__pgtable_l5_enabled")?.rawValue, let v = memory.u32(at: imagePA(sym)) {
      fiveLevel = v != 0
    } else {
      throw .missingFact("cannot tell 4- from 5-level paging")
    }
    func variable(_ name: String) throws(AnalyzerError) -> UInt64 {
      guard let sym = layout.symbol(name)?.rawValue else { throw .layout("no symbol \(name)") }
      guard let v = memory.u64(at: imagePA(sym)) else {
        throw .missingFact("\(name) (physical \(imagePA(sym))) is outside guest RAM")
      }
      return v
    }
    let pageOffsetBase = try variable("page_offset_base")
    let vmemmapBase = try variable("vmemmap_base")
    // Sanity: both bases are kernel-half addresses; vmcoreinfo's vmemmap (6.12) must agree.
    guard pageOffsetBase >> 63 == 1, vmemmapBase >> 63 == 1 else {
      throw .missingFact("page_offset_base or vmemmap_base is not a kernel address")
    }
    if let v = info.symbol("vmemmap"), v != vmemmapBase {
      throw .missingFact("vmemmap_base disagrees with vmcoreinfo's SYMBOL(vmemmap)")
    }
    let topPA = imagePA(top)
    guard memory.contains(topPA) else { throw .missingFact("init_top_pgt is outside guest RAM") }
    return KernelLocation(
      vmcoreinfo: info, notePhysicalAddress: at, slide: slide, physBase: physBase,
      fiveLevel: fiveLevel, topTable: topPA, pageOffsetBase: pageOffsetBase,
      vmemmapBase: vmemmapBase)
  }
}

/// Kernel virtual -> guest physical, for the kernel's own address space.
public struct KernelAddressSpace: Sendable {
  public let memory: any PhysicalMemory
  public let location: KernelLocation
  public let tables: PageTableWalker

  public init(memory: any PhysicalMemory, location: KernelLocation) {
    self.memory = memory
    self.location = location
    tables = PageTableWalker(memory: memory, fiveLevel: location.fiveLevel)
  }

  /// The running address of a symbol given its link-time address.
  public func running(_ link: KernelVirtualAddress) -> KernelVirtualAddress {
    KernelVirtualAddress(running(link.rawValue))
  }

  /// Translates; nil when unmapped or outside RAM.
  public func physical(_ va: KernelVirtualAddress) -> GuestPhysicalAddress? {
    physical(va.rawValue).map(GuestPhysicalAddress.init)
  }

  /// The little-endian word at a kernel virtual address; nil when unmapped or outside RAM.
  public func u64(_ va: KernelVirtualAddress) -> UInt64? { u64(va.rawValue) }
  public func u32(_ va: KernelVirtualAddress) -> UInt32? { u32(va.rawValue) }
  /// `count` bytes at `va`, not crossing a page (names, headers).
  public func bytes(_ va: KernelVirtualAddress, count: Int) -> [UInt8]? {
    bytes(va.rawValue, count: count)
  }

  // Raw forms for the walkers inside this module, which compute addresses from guest words.

  func running(_ link: UInt64) -> UInt64 { link &+ location.slide }

  func physical(_ va: UInt64) -> UInt64? {
    if va >= startKernelMap && va - startKernelMap < kernelImageWindow {
      return va - startKernelMap &+ location.physBase
    }
    if va >= location.pageOffsetBase && va - location.pageOffsetBase < memory.end {
      return va - location.pageOffsetBase
    }
    return tables.translate(root: location.topTable, va: va)?.pa
  }

  func u64(_ va: UInt64) -> UInt64? { physical(va).flatMap { memory.u64(at: $0) } }
  func u32(_ va: UInt64) -> UInt32? { physical(va).flatMap { memory.u32(at: $0) } }
  func bytes(_ va: UInt64, count: Int) -> [UInt8]? {
    // Small reads only (names, headers): they may not cross a page.
    guard count <= 4096 - Int(va & 4095), let pa = physical(va) else { return nil }
    return memory.bytes(at: pa, count: count)
  }
}
