import KscopeDebugInfo
import KscopeLayout
import KscopeOS
import Testing

// Files that are not a usable vmlinux: each gives a one-line error naming the file and what
// is wrong, never a crash and never a layout. These need no kernel: the ELF headers are
// written by hand here.

/// An ELF header (`class` 1 = 32-bit, 2 = 64-bit; `data` 1 = little, 2 = big endian).
private func elfHeader(
  class elfClass: UInt8 = 2, data: UInt8 = 1, type: UInt16 = 2, machine: UInt16 = 62,
  sectionHeaderOffset: UInt64 = 0, sectionCount: UInt16 = 0
) -> [UInt8] {
  func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
  func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
  func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
  let be = data == 2
  func h16(_ v: UInt16) -> [UInt8] { be ? le16(v).reversed() : le16(v) }
  var bytes: [UInt8] =
    [0x7f, 0x45, 0x4c, 0x46, elfClass, data, 1, 0] + [UInt8](repeating: 0, count: 8)
  bytes += h16(type) + h16(machine) + le32(1)
  if elfClass == 1 {
    bytes += le32(0) + le32(0) + le32(UInt32(sectionHeaderOffset)) + le32(0)
    bytes += le16(52) + le16(32) + le16(0) + le16(40) + le16(sectionCount) + le16(0)
  } else {
    bytes += le64(0) + le64(0) + le64(sectionHeaderOffset) + le32(0)
    bytes += le16(64) + le16(56) + le16(0) + le16(64) + le16(sectionCount) + le16(0)
  }
  return bytes
}

@Suite struct BadInputTests {
  func extractError(_ path: String) -> DebugInfoError? {
    do {
      _ = try LayoutExtractor.extract(vmlinux: path)
      return nil
    } catch {
      return error
    }
  }

  @Test func notAnELF() throws {
    let scratch = try ScratchDirectory()
    let file = try scratch.write("notes.txt", Array("just some text, not a kernel\n".utf8))
    #expect(extractError(file) == .notELF(path: file))
    #expect(
      extractError(file)?.description == "\(file): not an ELF file (expected a vmlinux with DWARF)")
    let empty = try scratch.write("empty", [])
    #expect(extractError(empty) == .notELF(path: empty))
  }

  @Test func missingFileAndDirectory() throws {
    let scratch = try ScratchDirectory()
    #expect(
      extractError(scratch.path + "/nope")
        == .cannotOpen(path: scratch.path + "/nope", reason: "No such file or directory"))
    #expect(
      extractError(scratch.path) == .cannotOpen(path: scratch.path, reason: "is a directory, not a regular file"))
  }

  @Test func otherArchitecturesAndClasses() throws {
    let scratch = try ScratchDirectory()
    let arm = try scratch.write("arm64", elfHeader(machine: 183))
    #expect(extractError(arm) == .wrongArchitecture(path: arm, machine: "aarch64"))
    #expect(
      extractError(arm)?.description
        == "\(arm): ELF for aarch64, not x86_64; kscope reads x86_64 kernels")
    let i386 = try scratch.write("i386", elfHeader(class: 1, machine: 3))
    #expect(extractError(i386) == .wrongClass(path: i386, detail: "32-bit ELF"))
    let s390 = try scratch.write("s390", elfHeader(data: 2, machine: 22))
    #expect(extractError(s390) == .wrongClass(path: s390, detail: "big-endian ELF"))
    let object = try scratch.write("module.o", elfHeader(type: 1))
    #expect(
      extractError(object) == .notAnExecutable(path: object, type: "REL (an object or module)"))
  }

  @Test func truncatedFiles() throws {
    let scratch = try ScratchDirectory()
    // The header promises 40 section headers at offset 4096, but the file ends at 64 bytes.
    let short = try scratch.write("short", elfHeader(sectionHeaderOffset: 4096, sectionCount: 40))
    #expect(
      extractError(short)
        == .truncated(path: short, detail: "section headers end at 6656, file has 64 bytes"))
    // A real executable cut after its first page: its section table is gone.
    let whole = try Files.read("/bin/true")
    let cut = try scratch.write("true-cut", Array(whole.prefix(4096)))
    guard case .truncated(let path, _) = extractError(cut) else {
      Issue.record("expected a truncation error, got \(String(describing: extractError(cut)))")
      return
    }
    #expect(path == cut)
  }

  @Test func elfWithoutDWARF() throws {
    // /bin/true is a stripped x86_64 executable, like a vmlinux stripped of its debug info.
    #expect(extractError("/bin/true") == .noDebugInfo(path: "/bin/true"))
    #expect(extractError("/bin/true")?.description.contains("no DWARF") == true)
  }
}
