import CElfutils
import KscopeCore
import KscopeOS

// The vmlinux as an ELF file through libelf: opened with ELF_C_READ_MMAP so that section data
// is read straight from the page cache (a 590 MB vmlinux costs only what is touched), checked
// for class, architecture and truncation before anything trusts its offsets.

/// One section's header, as far as we use it.
struct SectionInfo {
  let index: Int
  let name: String
  let type: UInt32
  let flags: UInt64
  let address: UInt64
  let offset: UInt64
  let size: UInt64
  let link: UInt32
  let entrySize: UInt64
  let scn: OpaquePointer
}

/// An open ELF file: owns the descriptor and the libelf handle (and so the mapping).
struct ElfFile: ~Copyable {
  let path: String
  /// Owns the descriptor libelf reads from (closed after elf_end, in deinit's order).
  let file: OpenFile
  let elf: OpaquePointer
  let sections: [SectionInfo]
  let fileSize: UInt64

  init(path: String) throws(DebugInfoError) {
    self.path = path
    // elf_version must be called once before any other libelf call; it is idempotent.
    _ = elf_version(UInt32(EV_CURRENT))
    let opened: OpenFile
    do { opened = try OpenFile.open(path) } catch {
      throw .cannotOpen(path: path, reason: error.message)
    }
    let size = opened.size
    guard let handle = elf_begin(opened.fd, ELF_C_READ_MMAP, nil) else {
      throw .libelf(path: path, operation: "elf_begin", message: ElfFile.elfMessage())
    }
    do {
      sections = try ElfFile.checkedSections(handle, path: path, fileSize: size)
    } catch {
      elf_end(handle)
      throw error
    }
    file = opened
    elf = handle
    fileSize = size
  }

  deinit { elf_end(elf) }

  static func elfMessage() -> String { String(cString: elf_errmsg(-1)) }

  /// Validates the header and section table, and lists the sections.
  private static func checkedSections(_ elf: OpaquePointer, path: String, fileSize: UInt64)
    throws(DebugInfoError) -> [SectionInfo]
  {
    guard elf_kind(elf) == ELF_K_ELF else { throw .notELF(path: path) }
    // e_ident is readable whenever elf_kind said ELF (libelf checked the magic).
    var identSize = 0
    guard let ident = elf_getident(elf, &identSize), identSize >= Int(EI_NIDENT) else {
      throw .truncated(path: path, detail: "ELF identification is incomplete")
    }
    let elfClass = UInt8(bitPattern: ident[Int(EI_CLASS)])
    let elfData = UInt8(bitPattern: ident[Int(EI_DATA)])
    guard elfClass == UInt8(ELFCLASS64) else {
      throw .wrongClass(
        path: path, detail: elfClass == UInt8(ELFCLASS32) ? "32-bit ELF" : "ELF class \(elfClass)")
    }
    guard elfData == UInt8(ELFDATA2LSB) else {
      throw .wrongClass(path: path, detail: "big-endian ELF")
    }
    var header = GElf_Ehdr()
    guard gelf_getehdr(elf, &header) != nil else {
      throw .truncated(path: path, detail: "ELF header: \(elfMessage())")
    }
    guard header.e_machine == UInt16(EM_X86_64) else {
      throw .wrongArchitecture(path: path, machine: machineName(header.e_machine))
    }
    guard header.e_type == UInt16(ET_EXEC) || header.e_type == UInt16(ET_DYN) else {
      let names: [UInt16: String] = [
        UInt16(ET_REL): "REL (an object or module)", UInt16(ET_CORE): "CORE",
      ]
      throw .notAnExecutable(path: path, type: names[header.e_type] ?? String(header.e_type))
    }
    // The section header table must lie inside the file before libelf walks it.
    let tableEnd = header.e_shoff + UInt64(header.e_shnum) * UInt64(header.e_shentsize)
    guard header.e_shoff > 0, tableEnd <= fileSize else {
      throw .truncated(
        path: path, detail: "section headers end at \(tableEnd), file has \(fileSize) bytes")
    }
    var stringIndex = 0
    guard elf_getshdrstrndx(elf, &stringIndex) == 0 else {
      throw .libelf(path: path, operation: "elf_getshdrstrndx", message: elfMessage())
    }
    var result: [SectionInfo] = []
    var scn: OpaquePointer? = nil
    while let current = elf_nextscn(elf, scn) {
      scn = current
      var shdr = GElf_Shdr()
      guard gelf_getshdr(current, &shdr) != nil else {
        throw .libelf(path: path, operation: "gelf_getshdr", message: elfMessage())
      }
      let name = elf_strptr(elf, stringIndex, Int(shdr.sh_name)).map { String(cString: $0) } ?? ""
      if shdr.sh_type != UInt32(SHT_NOBITS) {
        let (end, overflow) = shdr.sh_offset.addingReportingOverflow(shdr.sh_size)
        guard !overflow, end <= fileSize else {
          throw .truncated(
            path: path, detail: "section \(name) ends at \(end), file has \(fileSize) bytes")
        }
      }
      result.append(
        SectionInfo(
          index: Int(elf_ndxscn(current)), name: name, type: shdr.sh_type, flags: shdr.sh_flags,
          address: shdr.sh_addr, offset: shdr.sh_offset, size: shdr.sh_size, link: shdr.sh_link,
          entrySize: shdr.sh_entsize, scn: current))
    }
    return result
  }

  private static func machineName(_ machine: UInt16) -> String {
    let names: [Int32: String] = [
      EM_386: "i386", EM_ARM: "arm", EM_AARCH64: "aarch64", EM_PPC64: "ppc64", EM_S390: "s390",
      EM_RISCV: "riscv", EM_MIPS: "mips", EM_SPARCV9: "sparc64", EM_LOONGARCH: "loongarch",
    ]
    return names[Int32(machine)] ?? "machine \(machine)"
  }

  func section(named name: String) -> SectionInfo? { sections.first { $0.name == name } }

  /// The bytes of a section as libelf gives them (the file's bytes: no conversion is needed
  /// for a little-endian ELF on a little-endian host).
  func withSectionData<R>(
    _ section: SectionInfo, _ body: (UnsafeRawBufferPointer) throws(DebugInfoError) -> R
  )
    throws(DebugInfoError) -> R
  {
    guard let data = elf_getdata(section.scn, nil) else {
      throw .libelf(
        path: path, operation: "elf_getdata(\(section.name))", message: ElfFile.elfMessage())
    }
    let buffer = UnsafeRawBufferPointer(start: data.pointee.d_buf, count: Int(data.pointee.d_size))
    return try body(buffer)
  }

  /// `count` bytes at a link-time virtual address, from the section that contains them.
  func bytes(at address: UInt64, count: Int) throws(DebugInfoError) -> [UInt8]? {
    guard
      let section = sections.first(where: {
        $0.type == UInt32(SHT_PROGBITS) && $0.flags & UInt64(SHF_ALLOC) != 0
          && $0.address <= address
          && address - $0.address < $0.size
      })
    else { return nil }
    let start = Int(address - section.address)
    let available = Int(section.size) - start
    return try withSectionData(section) { data in
      guard start + min(count, available) <= data.count else { return nil }
      return Array(data[start..<(start + min(count, available))])
    }
  }
}
