import KscopeCore

// A kernel image without debug info: the ELF inside a vmlinux or a vmlinuz (section headers
// only, no .symtab needed), read from bytes. It yields the layout's three ingredients: .BTF
// (types), kallsyms in .rodata (symbols), and .notes (build id) — and the banner's bytes.

/// An x86-64 bzImage's compressed payload (the vmlinux ELF inside a vmlinuz).
public struct BzImagePayload: Sendable, Equatable {
  public enum Compression: String, Sendable {
    case gzip, xz, lz4, zstd, lzma, bzip2, lzo, none
  }
  public var offset: Int
  public var length: Int
  public var compression: Compression
  /// The decompressed size the kernel build appends (le32 after the payload).
  public var decompressedSize: Int

  /// Parses the setup header (Documentation/arch/x86/boot.rst): "HdrS" at 0x202, protocol
  /// 2.08+ for payload_offset/payload_length at 0x248, setup_sects at 0x1f1.
  public static func parse(_ image: UnsafeRawBufferPointer) throws(BTFError) -> BzImagePayload {
    guard image.count >= 0x250, image[0x202] == 0x48, image[0x203] == 0x64, image[0x204] == 0x72,
      image[0x205] == 0x53
    else { throw BTFError("not a bzImage (no HdrS setup header)") }
    let version = Int(image[0x206]) | Int(image[0x207]) << 8
    guard version >= 0x208 else { throw BTFError("bzImage boot protocol \(String(version, radix: 16)) has no payload fields") }
    let sects = Int(image[0x1F1]) == 0 ? 4 : Int(image[0x1F1])
    let payloadOffset = Int(Kallsyms.u32(image, 0x248)), payloadLength = Int(Kallsyms.u32(image, 0x24C))
    let start = (sects + 1) * 512 + payloadOffset
    guard payloadLength > 8, start <= image.count, payloadLength <= image.count - start else {
      throw BTFError("bzImage payload \(start)+\(payloadLength) is outside the \(image.count)-byte file")
    }
    let m = Array(UnsafeRawBufferPointer(rebasing: image[start..<(start + 6)]))
    let compression: Compression
    if m[0] == 0x1F && (m[1] == 0x8B || m[1] == 0x9E) {
      compression = .gzip
    } else if m[0] == 0xFD && m[1] == 0x37 && m[2] == 0x7A && m[3] == 0x58 && m[4] == 0x5A {
      compression = .xz
    } else if m[0] == 0x02 && m[1] == 0x21 && m[2] == 0x4C && m[3] == 0x18 {
      compression = .lz4
    } else if m[0] == 0x28 && m[1] == 0xB5 && m[2] == 0x2F && m[3] == 0xFD {
      compression = .zstd
    } else if m[0] == 0x5D && m[1] == 0x00 {
      compression = .lzma
    } else if m[0] == 0x42 && m[1] == 0x5A && m[2] == 0x68 {
      compression = .bzip2
    } else if m[0] == 0x89 && m[1] == 0x4C && m[2] == 0x5A && m[3] == 0x4F {
      compression = .lzo
    } else if m[0] == 0x7F && m[1] == 0x45 && m[2] == 0x4C && m[3] == 0x46 {
      compression = .none
    } else {
      throw BTFError("bzImage payload has an unknown compression (magic \(m.prefix(4).map { String($0, radix: 16) }.joined(separator: " ")))")
    }
    let size = Int(Kallsyms.u32(image, start + payloadLength - 4))
    return BzImagePayload(offset: start, length: payloadLength - 4, compression: compression, decompressedSize: size)
  }
}

/// The sections of a 64-bit little-endian ELF file held in memory.
public struct ElfSections: Sendable {
  public struct Section: Sendable, Equatable {
    public var name: String
    public var type: UInt32
    public var address: UInt64
    public var offset: Int
    public var size: Int
  }
  public var sections: [Section]

  public init(_ file: UnsafeRawBufferPointer) throws(BTFError) {
    guard file.count >= 64, file[0] == 0x7F, file[1] == 0x45, file[2] == 0x4C, file[3] == 0x46 else {
      throw BTFError("not an ELF file")
    }
    guard file[4] == 2, file[5] == 1 else { throw BTFError("not a 64-bit little-endian ELF file") }
    let shoff = Kallsyms.u64(file, 0x28)
    let shentsize = Int(Kallsyms.u16(file, 0x3A)), shnum = Int(Kallsyms.u16(file, 0x3C))
    let shstrndx = Int(Kallsyms.u16(file, 0x3E))
    guard shentsize >= 64, shnum > 0, shnum < 4096, shoff < UInt64(file.count),
      shnum * shentsize <= file.count - Int(shoff), shstrndx < shnum
    else { throw BTFError("ELF section headers are outside the \(file.count)-byte file") }
    func header(_ i: Int) -> (UInt32, UInt32, UInt64, UInt64, UInt64) {
      let at = Int(shoff) + i * shentsize
      return (Kallsyms.u32(file, at), Kallsyms.u32(file, at + 4), Kallsyms.u64(file, at + 16),
              Kallsyms.u64(file, at + 24), Kallsyms.u64(file, at + 32))
    }
    let strtab = header(shstrndx)
    guard strtab.3 < UInt64(file.count), strtab.4 <= UInt64(file.count) - strtab.3 else {
      throw BTFError("ELF section name table is outside the file")
    }
    var out: [Section] = []
    for i in 0..<shnum {
      let (nameOff, type, addr, off, size) = header(i)
      var name = ""
      if UInt64(nameOff) < strtab.4 {
        var e = Int(strtab.3) + Int(nameOff)
        let s = e
        let limit = Int(strtab.3 + strtab.4)
        while e < limit, file[e] != 0 { e += 1 }
        name = String(decoding: UnsafeRawBufferPointer(rebasing: file[s..<e]), as: UTF8.self)
      }
      // NOBITS sections (.bss) occupy no file bytes.
      let fileSize = type == 8 ? 0 : size
      guard off <= UInt64(file.count), fileSize <= UInt64(file.count) - off else {
        throw BTFError("ELF section \(name) (\(off)+\(size)) is outside the \(file.count)-byte file")
      }
      out.append(Section(name: name, type: type, address: addr, offset: Int(off), size: Int(fileSize)))
    }
    sections = out
  }

  public func section(_ name: String) -> Section? { sections.first { $0.name == name } }

  /// The GNU build id in `.notes` (or `.note.gnu.build-id`): its bytes and address.
  public func buildID(_ file: UnsafeRawBufferPointer) -> (address: UInt64, bytes: [UInt8])? {
    for s in sections where s.type == 7 {  // SHT_NOTE
      var at = s.offset
      let end = s.offset + s.size
      while end - at >= 12 {
        let namesz = Int(Kallsyms.u32(file, at)), descsz = Int(Kallsyms.u32(file, at + 4))
        let type = Kallsyms.u32(file, at + 8)
        let nameAt = at + 12
        let descAt = nameAt + ((namesz + 3) & ~3)
        guard namesz < 256, descsz < 4096, descAt + descsz <= end else { break }
        if type == 3, namesz == 4, file[nameAt] == 0x47, file[nameAt + 1] == 0x4E, file[nameAt + 2] == 0x55 {
          return (s.address + UInt64(descAt - s.offset), Array(UnsafeRawBufferPointer(rebasing: file[descAt..<(descAt + descsz)])))
        }
        at = descAt + ((descsz + 3) & ~3)
      }
    }
    return nil
  }
}

extension KernelLayout {
  /// The symbols a layout records, from kallsyms addresses (link-time) and the banner's bytes
  /// read by `readBanner` (at the banner's address; nil when unreadable).
  public static func kallsymsSymbols(
    _ addresses: [String: UInt64], buildID: (address: UInt64, bytes: [UInt8])?,
    readBanner: (UInt64) -> [UInt8]?
  ) -> [String: Symbol] {
    var symbols: [String: Symbol] = [:]
    for (name, address) in addresses { symbols[name] = Symbol(address: KernelVirtualAddress(address)) }
    if let at = addresses[LayoutSymbolName.banner], let bytes = readBanner(at) {
      symbols[LayoutSymbolName.banner]?.constantData = bytes
    }
    if let buildID {
      symbols[LayoutSymbolName.buildID] = Symbol(address: KernelVirtualAddress(buildID.address), constantData: buildID.bytes)
    }
    return symbols
  }

  /// Every symbol name a request may record (what to look up in kallsyms).
  public static func symbolNames(_ request: LayoutRequest) -> Set<String> {
    Set(request.symbols + request.optionalSymbols + [LayoutSymbolName.banner])
  }

  /// A layout from a decompressed kernel ELF without debug info: types from .BTF, symbols
  /// from kallsyms in .rodata, the build id from .notes.
  public static func fromKernelELF(_ file: UnsafeRawBufferPointer, request: LayoutRequest = .default, sourceName: String)
    throws(BTFError) -> KernelLayout
  {
    let elf = try ElfSections(file)
    guard let btfSection = elf.section(".BTF") else { throw BTFError("\(sourceName): the kernel has no .BTF section (built without CONFIG_DEBUG_INFO_BTF)") }
    guard let rodata = elf.section(".rodata"), rodata.size > 0 else { throw BTFError("\(sourceName): no .rodata section") }
    let btf = try BTF(Array(UnsafeRawBufferPointer(rebasing: file[btfSection.offset..<(btfSection.offset + btfSection.size)])))
    let ro = UnsafeRawBufferPointer(rebasing: file[rodata.offset..<(rodata.offset + rodata.size)])
    let kallsyms = try Kallsyms.find(in: ro, base: rodata.address, wanted: symbolNames(request))
    let symbols = kallsymsSymbols(kallsyms.addresses, buildID: elf.buildID(file)) { address in
      bannerBytes(ro, base: rodata.address, at: address)
    }
    return try fromBTF(btf, symbols: symbols, request: request, sourceName: sourceName,
                       extraSources: [LayoutSource(kind: "kallsyms", name: sourceName)])
  }

  /// The NUL-terminated banner string at `address` in `image` (with its NUL, as the DWARF path
  /// records it), at most 512 bytes.
  public static func bannerBytes(_ image: UnsafeRawBufferPointer, base: UInt64, at address: UInt64) -> [UInt8]? {
    guard address >= base, address - base < UInt64(image.count) else { return nil }
    let start = Int(address - base)
    var end = start
    while end < image.count, end - start < 512, image[end] != 0 { end += 1 }
    guard end < image.count, image[end] == 0 else { return nil }
    return Array(UnsafeRawBufferPointer(rebasing: image[start...end]))
  }
}
