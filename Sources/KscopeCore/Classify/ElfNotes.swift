/// Finds the GNU build id in a sequence of ELF notes (/sys/kernel/notes, a PT_NOTE segment,
/// a .note.gnu.build-id section). Bounded: malformed notes end the search with nil.
public func gnuBuildID(inNotes bytes: [UInt8]) -> String? {
  let r = ByteReader(bytes)
  var at = 0
  func align4(_ n: Int) -> Int { (n + 3) & ~3 }
  while at + 12 <= bytes.count {
    guard let nameSize = try? r.u32(at: at), let descSize = try? r.u32(at: at + 4),
      let type = try? r.u32(at: at + 8), nameSize <= 4096, descSize <= 4096
    else { return nil }
    let nameAt = at + 12
    let descAt = nameAt + align4(Int(nameSize))
    let next = descAt + align4(Int(descSize))
    guard next <= bytes.count else { return nil }
    if type == 3, nameSize == 4, Array(bytes[nameAt..<(nameAt + 4)]) == [0x47, 0x4E, 0x55, 0] {
      return hexString(bytes[descAt..<(descAt + Int(descSize))])
    }
    at = next
  }
  return nil
}
