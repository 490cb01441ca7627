import KscopeCore
import KscopeOS

/// /proc/kcore: the running kernel's memory as an ELF core (root only). Its PT_LOAD segments
/// map kernel virtual addresses (the image, the direct map, vmalloc) to file offsets, so the
/// agent can read the value of a kernel variable whose address /proc/kallsyms gave.
final class Kcore {
  let fd: Int32
  var segments: [(vaddr: UInt64, size: UInt64, offset: UInt64)] = []

  init?(path: String = "/proc/kcore") {
    guard let fd = Files.openRead(path) else { return nil }
    self.fd = fd
    var header = [UInt8](repeating: 0, count: 64)
    guard Files.read(fd, into: &header, count: 64, at: 0) == 64,
      header[0..<4].elementsEqual([0x7F, 0x45, 0x4C, 0x46]), header[4] == 2, header[5] == 1
    else { return nil }
    let r = ByteReader(header)
    guard let phoff = try? r.u64(at: 32), let phentsize = try? r.u16(at: 54),
      let phnum = try? r.u16(at: 56), phentsize == 56, phnum > 0
    else { return nil }
    var table = [UInt8](repeating: 0, count: Int(phnum) * 56)
    guard Files.read(fd, into: &table, count: table.count, at: phoff) == table.count else { return nil }
    let t = ByteReader(table)
    for i in 0..<Int(phnum) {
      let at = i * 56
      guard let type = try? t.u32(at: at), type == 1,  // PT_LOAD
        let offset = try? t.u64(at: at + 8), let vaddr = try? t.u64(at: at + 16),
        let filesz = try? t.u64(at: at + 32)
      else { continue }
      segments.append((vaddr, filesz, offset))
    }
  }

  deinit { Files.closeDescriptor(fd) }

  /// Reads `count` bytes at a kernel virtual address, or nil if no segment holds them all.
  func read(_ address: UInt64, count: Int) -> [UInt8]? {
    for s in segments where address >= s.vaddr && address - s.vaddr <= s.size
      && UInt64(count) <= s.size - (address - s.vaddr)
    {
      var b = [UInt8](repeating: 0, count: count)
      guard Files.read(fd, into: &b, count: count, at: s.offset + (address - s.vaddr)) == count else {
        return nil
      }
      return b
    }
    return nil
  }

  func u64(_ address: UInt64) -> UInt64? {
    guard let b = read(address, count: 8) else { return nil }
    return try? ByteReader(b).u64(at: 0)
  }
}
