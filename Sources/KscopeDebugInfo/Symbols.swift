import CElfutils
import KscopeOS
import KscopeCore

// Symbols from `.symtab`, the GNU build id from the note sections, and the banner string.

extension ElfFile {
  /// Addresses of `names` in `.symtab`. A global definition wins over a local one of the same
  /// name; undefined symbols, sections and file names are ignored.
  func symbolAddresses(_ names: [String]) throws(DebugInfoError) -> [String: (
    address: UInt64, size: UInt64
  )] {
    guard let symtab = sections.first(where: { $0.type == UInt32(SHT_SYMTAB) }) else {
      throw .noSymbolTable(path: path)
    }
    guard symtab.entrySize == UInt64(MemoryLayout<Elf64_Sym>.size),
      let strtab = sections.first(where: { $0.index == Int(symtab.link) })
    else {
      throw .truncated(
        path: path, detail: ".symtab has entry size \(symtab.entrySize) or a bad string table link")
    }
    // Wanted names by length, so that each of the ~120k symbols costs a strlen and, rarely, a
    // memcmp; building a Swift String per symbol would dominate the extraction time.
    var byLength: [Int: [(name: String, bytes: [UInt8])]] = [:]
    for name in names { byLength[name.utf8.count, default: []].append((name, Array(name.utf8))) }
    let maxLength = byLength.keys.max() ?? 0

    var found: [String: (address: UInt64, size: UInt64, global: Bool)] = [:]
    try withSectionData(strtab) { (strings) throws(DebugInfoError) in
      try withSectionData(symtab) { (table) throws(DebugInfoError) in
        let count = table.count / MemoryLayout<Elf64_Sym>.size
        for i in 0..<count {
          let sym = table.loadUnaligned(
            fromByteOffset: i * MemoryLayout<Elf64_Sym>.size, as: Elf64_Sym.self)
          let nameOffset = Int(sym.st_name)
          guard nameOffset > 0, nameOffset < strings.count, sym.st_shndx != UInt16(SHN_UNDEF) else {
            continue
          }
          let kind = Int32(sym.st_info & 0xf)
          guard kind != STT_SECTION, kind != STT_FILE else { continue }
          let start = strings.baseAddress! + nameOffset
          let length = Memory.cStringLength(
            start, max: min(maxLength + 1, strings.count - nameOffset))
          guard let candidates = byLength[length] else { continue }
          for candidate in candidates where Memory.equal(start, candidate.bytes, count: length) {
            let global = (sym.st_info >> 4) != UInt8(STB_LOCAL)
            if let previous = found[candidate.name], previous.global || !global { continue }
            found[candidate.name] = (sym.st_value, sym.st_size, global)
          }
        }
      }
    }
    return found.mapValues { ($0.address, $0.size) }
  }

  /// The GNU build id (NT_GNU_BUILD_ID) and the link-time address of its bytes, if any.
  func buildID() throws(DebugInfoError) -> (bytes: [UInt8], address: UInt64)? {
    for section in sections where section.type == UInt32(SHT_NOTE) {
      guard let data = elf_getdata(section.scn, nil) else {
        throw .libelf(
          path: path, operation: "elf_getdata(\(section.name))", message: ElfFile.elfMessage())
      }
      var offset = 0
      while true {
        var header = GElf_Nhdr()
        var nameOffset = 0
        var descOffset = 0
        let next = gelf_getnote(data, offset, &header, &nameOffset, &descOffset)
        if next == 0 { break }
        offset = next
        guard header.n_type == UInt32(NT_GNU_BUILD_ID), header.n_namesz == 4 else { continue }
        let base = UnsafeRawPointer(data.pointee.d_buf!)
        guard Memory.equal(base + nameOffset, Array("GNU\0".utf8), count: 4) else { continue }
        let bytes = Array(
          UnsafeRawBufferPointer(start: base + descOffset, count: Int(header.n_descsz)))
        let address =
          section.flags & UInt64(SHF_ALLOC) != 0 ? section.address + UInt64(descOffset) : 0
        return (bytes, address)
      }
    }
    return nil
  }
}
