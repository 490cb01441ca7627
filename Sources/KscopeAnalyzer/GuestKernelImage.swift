import KscopeCore
import KscopeSnapshot
import KscopeLayout

/// A kernel layout from the guest's memory alone, for kernels whose debug info nobody has:
/// vmcoreinfo says where the kernel image is (SYMBOL(_stext), KERNELOFFSET, phys_base); the
/// image holds its own BTF (.BTF, kept for /sys/kernel/btf/vmlinux) and kallsyms tables.
///
/// Symbols come from kallsyms; vmcoreinfo's SYMBOL() entries must agree with them where both
/// have a symbol, and fill in what kallsyms lacks. (SYMBOL(mem_section) and SYMBOL(vmemmap)
/// hold the variables' values, not their addresses, and are never taken as addresses.)
/// Addresses are made link-time by taking off KERNELOFFSET, as the layout records them.
public enum GuestKernelImage {
  /// How much of the image is read, from _stext: text, rodata (BTF, kallsyms) and more.
  static let imageWindow = 96 << 20
  static let valueSymbols: Set<String> = ["mem_section", "vmemmap"]
  /// BTF header with the layout every kernel writes: magic, version 1, flags 0, hdr_len 24,
  /// type_off 0.
  static let btfHeader: [UInt8] = [0x9F, 0xEB, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0]

  public struct Found: Sendable {
    public var layout: KernelLayout
    public var vmcoreinfoAddress: UInt64
    public var btfAddress: UInt64
    public var btfBytes: Int
    public var kallsymsSymbols: Int
  }

  /// BTF that came from elsewhere than the kernel image (the agent's hints), and the name the
  /// layout gives its source.
  public struct GivenBTF: Sendable {
    public var btf: BTF
    public var sourceName: String
    public init(_ btf: BTF, sourceName: String) {
      self.btf = btf
      self.sourceName = sourceName
    }
  }

  /// The layout `request` asks for, from guest memory. `hintedNote` is the agent's word on
  /// where vmcoreinfo is (checked like any candidate); `buildID` the kernel expected. With
  /// `btf`, the types come from it and the image is searched only for kallsyms.
  public static func layout(
    memory: any PhysicalMemory, request: LayoutRequest = .default, hintedNote: UInt64? = nil,
    buildID: String? = nil, btf: GivenBTF? = nil
  ) throws(BTFError) -> Found {
    var reason = "no vmcoreinfo note names build \(buildID ?? "?")"
    var found: Found? = nil
    var seen = 0
    func attempt(_ at: UInt64, _ info: VMCoreInfo) -> Bool {
      seen += 1
      if let buildID, info.buildID != buildID { return false }
      do {
        found = try fromImage(memory: memory, info: info, noteAt: at, request: request, btf: btf)
        return true
      } catch {
        reason = error.description
        return false
      }
    }
    if let at = hintedNote, let info = KernelLocator.note(at: at, in: memory), attempt(at, info) { return found! }
    pageAlignedNotes(in: memory, until: attempt)
    if let found { return found }
    // Not at a page start (never seen): a scan of all RAM.
    for (at, info) in KernelLocator.notes(in: memory, limit: 16) where attempt(at, info) { return found! }
    guard seen > 0 else { throw BTFError("guest memory: no vmcoreinfo note") }
    throw BTFError("guest memory: \(reason)")
  }

  /// The kernel allocates its vmcoreinfo note as whole pages (alloc_pages_exact), so the
  /// note starts a page: checking 24 bytes per page finds it without scanning all of RAM.
  /// Offers each note at a page start to `until`, from the top of RAM down (the allocator
  /// hands out high pages first, so the note is usually near the top), until it accepts one.
  /// Pages are touched only as far as the probe goes: each touch maps file pages.
  static func pageAlignedNotes(in memory: any PhysicalMemory, until accept: (UInt64, VMCoreInfo) -> Bool) {
    var offered = 0
    for r in memory.regions.sorted(by: { $0.guestPhysicalStart > $1.guestPhysicalStart }) {
      let end = r.guestPhysicalStart &+ r.size
      guard r.size >= 4096, end > r.guestPhysicalStart else { continue }
      var page = (end - 4096) & ~4095
      while page >= r.guestPhysicalStart, offered < 64 {
        // A hole holds no note; reading it through the mapping would allocate it (a sparse
        // snapshot on tmpfs grew from 128 MiB to 510 MiB of pages in one `color --no-hints`).
        if memory.mayHoldData(at: page, count: 24), memory.u32(at: page) == 11, memory.u32(at: page + 8) == 0,
          memory.bytes(at: page + 12, count: KernelLocator.noteName.count) == KernelLocator.noteName,
          let info = KernelLocator.note(at: page, in: memory)
        {
          offered += 1
          if accept(page, info) { return }
        }
        guard page >= 4096 else { break }
        page -= 4096
      }
    }
  }

  static func fromImage(
    memory: any PhysicalMemory, info: VMCoreInfo, noteAt: UInt64, request: LayoutRequest, btf given: GivenBTF? = nil
  ) throws(BTFError) -> Found
  {
    guard let stext = info.symbol("_stext"), stext >= startKernelMap, stext - startKernelMap < kernelImageWindow else {
      throw BTFError("vmcoreinfo has no usable SYMBOL(_stext)")
    }
    guard let slide = info.kernelOffset else { throw BTFError("vmcoreinfo has no KERNELOFFSET") }
    guard let physBase = info.physBase else { throw BTFError("vmcoreinfo has no NUMBER(phys_base)") }
    let imagePA = stext &- startKernelMap &+ physBase
    guard let region = memory.regions.first(where: { imagePA >= $0.guestPhysicalStart && imagePA < $0.end }) else {
      throw BTFError("the kernel image (physical 0x\(String(imagePA, radix: 16))) is outside guest RAM")
    }
    let count = Int(min(UInt64(imageWindow), region.end - imagePA))
    let wanted = KernelLayout.symbolNames(request).union(["_stext"])
    let result: Result<Found, BTFError>? = memory.withBytes(at: imagePA, count: count) { view in
      do throws(BTFError) {
        return .success(
          try read(view, base: stext, info: info, slide: slide, wanted: wanted, request: request, noteAt: noteAt, btf: given))
      } catch { return .failure(error) }
    }
    guard let result else { throw BTFError("the kernel image is not readable") }
    return try result.get()
  }

  static func read(
    _ view: UnsafeRawBufferPointer, base stext: UInt64, info: VMCoreInfo, slide: UInt64, wanted: Set<String>,
    request: LayoutRequest, noteAt: UInt64, btf given: GivenBTF? = nil
  ) throws(BTFError) -> Found {
    // 1. Symbols: kallsyms, at the places vmcoreinfo names (6.0+) or found by their shape.
    var kallsyms: KallsymsResult
    var kallsymsHow = "found by shape"
    func offset(_ name: String) -> Int? {
      guard let va = info.symbol(name), va >= stext, va - stext < UInt64(view.count) else { return nil }
      return Int(va - stext)
    }
    if let names = offset("kallsyms_names"), let numSyms = offset("kallsyms_num_syms"),
      let tokenTable = offset("kallsyms_token_table"), let tokenIndex = offset("kallsyms_token_index"),
      let offsets = offset("kallsyms_offsets"), let relativeBase = offset("kallsyms_relative_base"),
      let read = try? Kallsyms.read(
        in: view, base: stext,
        tables: .init(names: names, numSyms: numSyms, tokenTable: tokenTable, tokenIndex: tokenIndex, offsets: offsets, relativeBase: relativeBase),
        wanted: wanted)
    {
      kallsyms = read
      kallsymsHow = "tables from vmcoreinfo"
    } else {
      kallsyms = try Kallsyms.find(in: view, base: stext, wanted: wanted)
    }

    // 2. BTF: the first header whose blob parses; .BTF follows .rodata (and kallsyms in it).
    var btf: BTF? = given?.btf
    var btfAt = 0
    var btfReason = "no BTF header in the kernel image"
    let after = Int(kallsyms.tokenTableAddress &- stext)
    for start in [after, 0] where btf == nil {
      var from = start
      var hits = 0
      while btf == nil, hits < 32, let at = Kallsyms.search(view, btfHeader, from: from) {
        hits += 1
        from = at + 1
        guard let length = BTF.declaredLength(UnsafeRawBufferPointer(rebasing: view[at..<min(view.count, at + 24)])),
          length <= view.count - at
        else {
          btfReason = "BTF header at image offset \(at) declares more bytes than the image holds"
          continue
        }
        do {
          btf = try BTF(Array(UnsafeRawBufferPointer(rebasing: view[at..<(at + length)])))
          btfAt = at
        } catch {
          btfReason = error.description
        }
      }
    }
    guard let btf else { throw BTFError(btfReason) }

    // 3. Addresses checked against and completed by vmcoreinfo.
    guard let kStext = kallsyms.addresses["_stext"] else { throw BTFError("kallsyms has no _stext") }
    // The tables hold running addresses when the kernel relocated them, link-time otherwise.
    let toLink: UInt64
    if kStext == stext {
      toLink = slide
    } else if kStext == stext &- slide {
      toLink = 0
    } else {
      throw BTFError("kallsyms puts _stext at 0x\(String(kStext, radix: 16)), vmcoreinfo at 0x\(String(stext, radix: 16))")
    }
    var addresses: [String: UInt64] = [:]
    for (name, a) in kallsyms.addresses where wanted.contains(name) {
      addresses[name] = a >= startKernelMap ? a &- toLink : a
    }
    for name in wanted where !valueSymbols.contains(name) {
      guard let running = info.symbol(name) else { continue }
      let link = running &- slide
      if let have = addresses[name] {
        guard have == link else {
          throw BTFError("kallsyms and vmcoreinfo disagree on \(name): 0x\(String(have, radix: 16)) vs 0x\(String(link, radix: 16))")
        }
      } else {
        addresses[name] = link
      }
    }
    if !request.symbols.contains("_stext") && !request.optionalSymbols.contains("_stext") {
      addresses["_stext"] = nil
    }

    // 4. Build id: vmcoreinfo's, placed where its note is in the image.
    var buildID: (address: UInt64, bytes: [UInt8])? = nil
    if let hex = info.buildID, let bytes = hexBytes(hex) {
      let needle: [UInt8] = [0x47, 0x4E, 0x55, 0] + bytes
      // .notes sits just before .BTF in the kernels seen; the whole image is the fallback.
      let near = given == nil ? max(0, btfAt - (4 << 20)) : max(0, after)
      let at = Kallsyms.search(view, needle, from: near) ?? Kallsyms.search(view, needle, from: 0)
      buildID = (at.map { stext &+ UInt64($0 + 4) &- slide } ?? 0, bytes)
    }
    let symbols = KernelLayout.kallsymsSymbols(addresses, buildID: buildID) { link in
      KernelLayout.bannerBytes(view, base: stext, at: link &+ slide)
    }
    let layout = try KernelLayout.fromBTF(
      btf, symbols: symbols, request: request, sourceName: given?.sourceName ?? "guest-memory",
      extraSources: [LayoutSource(kind: "kallsyms", name: "guest-memory (\(kallsymsHow))")])
    // The banner must name the release vmcoreinfo names: the same kernel.
    if let release = info.release, let named = layout.release, named != release {
      throw BTFError("the kernel image's banner names \(named), vmcoreinfo \(release)")
    }
    return Found(
      layout: layout, vmcoreinfoAddress: noteAt, btfAddress: given == nil ? stext &+ UInt64(btfAt) : 0,
      btfBytes: btf.bytes.count, kallsymsSymbols: kallsyms.symbolCount)
  }

  static func hexBytes(_ hex: String) -> [UInt8]? {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0, chars.count <= 128 else { return nil }
    var out: [UInt8] = []
    for i in stride(from: 0, to: chars.count, by: 2) {
      guard let b = UInt8(String(decoding: chars[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
      out.append(b)
    }
    return out
  }
}
