import Foundation
import KscopeCore
import KscopeDebugInfo
import KscopeLayout
import KscopeTestSupport
import Testing

// Extracts again from the real Debian vmlinux files (host/setup.sh puts them in the cache)
// and checks the result three ways: against the recorded layout of the same release, against
// the file's own .symtab (nm), and against pahole's view of every recorded struct.
//
// A recorded layout belongs to one kernel release. When Debian moves a series to a new
// release, the cache holds a kernel we have no recording for: the test then fails, lists
// which recorded sizes and offsets changed, and prints the command that re-records.

func run(_ arguments: [String]) throws -> String {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  process.arguments = arguments
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = FileHandle.nullDevice
  try process.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return String(decoding: data, as: UTF8.self)
}

/// Differences between two layouts' sizes, offsets, enum values and symbols, one per line.
func differences(recorded: KernelLayout, extracted: KernelLayout) -> [String] {
  var result: [String] = []
  for (name, type) in recorded.userTypes.sorted(by: { $0.key < $1.key }) {
    guard let other = extracted.userTypes[name] else {
      result.append("struct \(name) is gone")
      continue
    }
    if type.size != other.size { result.append("sizeof(\(name)) \(type.size) -> \(other.size)") }
    for member in type.members {
      guard let now = other.member(named: member.name) else {
        result.append("\(name).\(member.name) is gone")
        continue
      }
      if now != member {
        result.append("\(name).\(member.name) offset \(member.offset) -> \(now.offset)")
      }
    }
  }
  for (name, type) in recorded.enums.sorted(by: { $0.key < $1.key })
  where extracted.enums[name] != type {
    result.append("enum \(name) changed")
  }
  for (name, symbol) in recorded.symbols.sorted(by: { $0.key < $1.key })
  where extracted.symbols[name] != symbol {
    result.append(
      "symbol \(name) \(symbol.address) -> \(extracted.symbols[name].map { "\($0.address)" } ?? "gone")"
    )
  }
  return result
}

/// Members of each struct as pahole prints them: absolute offsets (anonymous members inline),
/// bitfields as "offset:bit", and each member's size in bytes (a bitfield's storage unit).
/// `typedef struct { ... } name;` is keyed by the typedef name.
typealias PaholeMember = (offset: Int, bit: Int?, size: Int)
func paholeLayouts(_ text: String) throws -> [String: (size: Int, members: [String: PaholeMember])] {
  let start = try Regex(#"^(typedef )?(struct|union) ?(\w*) \{"#)
  // "};", "} atomic_t;" or "} __attribute__((__aligned__(64)));" at column 0.
  let end = try Regex(#"^\}\s*(\w*)"#)
  let member = try Regex(#"^\s+(?!\})(.*?);\s*/\*\s*(\d+)(?::\s*(\d+))?\s+(\d+)\s*\*/"#)
  let closing = try Regex(#"^\s+\}\s*(\w+)(\[\d+\])*;\s*/\*\s*(\d+)\s+(\d+)\s*\*/"#)
  let size = try Regex(#"^\t/\* size: (\d+)"#)
  let functionPointer = try Regex(#"\(\*\s*(\w+)\)\s*\("#)
  let attribute = try Regex(#"\s*__attribute__\(\(.*\)\)"#)
  let trailing = try Regex(#"((\[\d*\])+|:\d+)$"#)
  var result: [String: (size: Int, members: [String: PaholeMember])] = [:]
  var inside = false
  var name = ""
  var structSize = 0
  var members: [String: PaholeMember] = [:]
  // DWARF (unlike BTF) keeps alignment attributes, also between a nested type's "}" and its
  // member name: "} __attribute__((__aligned__(8))) shared __attribute__((...)); /* 40 32 */".
  let alignment = try Regex(#"\s*__attribute__\(\(\w+(\(\d+\))?\)\)"#)
  for raw in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
    let line = raw.hasPrefix("}") ? raw : raw.replacing(alignment, with: "")
    if let m = try start.firstMatch(in: line) {
      inside = true
      name = String(m.output[3].substring ?? "")
      members = [:]
    } else if inside, let m = try end.firstMatch(in: line) {
      if let typedefName = m.output[1].substring, !typedefName.isEmpty,
        typedefName != "__attribute__"
      {
        name = String(typedefName)
      }
      result[name] = (structSize, members)
      inside = false
    } else if inside, let m = try size.firstMatch(in: line) {
      structSize = Int(m.output[1].substring!)!
    } else if inside, let m = try closing.firstMatch(in: line) {
      members[String(m.output[1].substring!)] = (Int(m.output[3].substring!)!, nil, Int(m.output[4].substring!)!)
    } else if inside, let m = try member.firstMatch(in: line) {
      var declaration = String(m.output[1].substring!).replacing(attribute, with: "")
      let offset = Int(m.output[2].substring!)!
      let bit = m.output[3].substring.flatMap { Int($0) }
      let memberSize = Int(m.output[4].substring!)!
      let memberName: String
      if let f = try functionPointer.firstMatch(in: declaration) {
        memberName = String(f.output[1].substring!)
      } else {
        declaration = declaration.trimmingCharacters(in: .whitespaces).replacing(trailing, with: "")
        guard
          let last = declaration.split(whereSeparator: {
            !($0.isLetter || $0.isNumber || $0 == "_")
          }).last
        else { continue }
        memberName = String(last)
      }
      members[memberName] = (offset, bit, memberSize)
    }
  }
  return result
}

/// Enums as pahole prints them: "enum pageflags {", "\tPG_locked = 0,", "};".
func paholeEnums(_ text: String) throws -> [String: [String: Int64]] {
  let start = try Regex(#"^enum (\w+) \{"#)
  let constant = try Regex(#"^\s+(\w+)\s*=\s*(-?\d+),?\s*$"#)
  var result: [String: [String: Int64]] = [:]
  var name: String? = nil
  for line in text.split(separator: "\n").map(String.init) {
    if let m = try start.firstMatch(in: line) {
      name = String(m.output[1].substring!)
      result[name!] = [:]
    } else if let current = name, line.hasPrefix("}") {
      _ = current
      name = nil
    } else if let current = name, let m = try constant.firstMatch(in: line) {
      result[current]![String(m.output[1].substring!)] = Int64(m.output[2].substring!)!
    }
  }
  return result
}

@Suite(.serialized) struct VmlinuxIntegrationTests {
  @Test(arguments: ["6.1", "6.12"])
  func extractionMatchesTheRecordedLayout(series: String) throws {
    guard let release = KernelCache.release(series) else { return }
    let extracted = try LayoutExtractor.extract(vmlinux: KernelCache.vmlinux(series))
    #expect(extracted.release == release)
    guard Recorded.releases.contains(release) else {
      let sameSeries = Recorded.releases.filter { recorded in
        let prefix = recorded.split(separator: ".").prefix(2).joined(separator: ".")
        return prefix == series || prefix.hasPrefix(series + "-")
      }
      var message = "no recorded layout for \(release) (the cached \(series) kernel)"
      if let old = sameSeries.last, let oldLayout = try? Recorded.layout(old) {
        let changed = differences(recorded: oldLayout, extracted: extracted).filter {
          !$0.hasPrefix("symbol ")
        }
        message +=
          "; recorded is \(old): \(changed.isEmpty ? "no struct size, offset or enum changed" : "changed: " + changed.joined(separator: "; "))"
      }
      message +=
        ". Re-record: swift run kscope layout extract \(KernelCache.vmlinux(series)) -o Tests/KscopeLayoutTests/Recorded/\(release).json (and git rm the old one)"
      Issue.record(Comment(rawValue: message))
      return
    }
    let recorded = try Recorded.layout(release)
    #expect(differences(recorded: recorded, extracted: extracted) == [])
    #expect(extracted == recorded)
    #expect(extracted.isfText() == (try Recorded.text(release)))
  }

  @Test(arguments: ["6.1", "6.12"])
  func symbolsAgreeWithNm(series: String) throws {
    guard KernelCache.release(series) != nil else { return }
    let layout = try LayoutExtractor.extract(vmlinux: KernelCache.vmlinux(series))
    var nm: [String: Set<UInt64>] = [:]
    for line in try run(["nm", KernelCache.vmlinux(series)]).split(separator: "\n") {
      let parts = line.split(separator: " ")
      guard parts.count == 3, let address = UInt64(parts[0], radix: 16) else { continue }
      nm[String(parts[2]), default: []].insert(address)
    }
    #expect(nm.count > 50_000, "nm printed too little; is binutils installed? (host/setup.sh)")
    for (name, symbol) in layout.symbols where name != LayoutSymbolName.buildID {
      #expect(
        nm[name]?.contains(symbol.address.rawValue) == true,
        "\(name) at \(symbol.address), nm says \(nm[name] ?? [])")
    }
    for name in LayoutRequest.default.optionalSymbols where nm[name] != nil {
      #expect(layout.symbols[name] != nil, "\(name) is in .symtab but not in the layout")
    }
  }

  /// Every member (offset, bit position, size) and every enum constant of the layout against
  /// pahole reading the vmlinux's DWARF (`-F dwarf`, not the kernel's BTF, which is derived
  /// from the same DWARF by the kernel build and so not an independent view).
  @Test(arguments: ["6.1", "6.12"])
  func layoutAgreesWithPaholeDwarf(series: String) throws {
    guard KernelCache.release(series) != nil else { return }
    let layout = try LayoutExtractor.extract(vmlinux: KernelCache.vmlinux(series))
    // Every recorded struct and union pahole can name: the requested ones and the typedef'd
    // anonymous ones they use (atomic_t, pgd_t, ...); only unnamed_* have no name to ask for.
    let names = layout.userTypes.keys.filter { !$0.hasPrefix("unnamed_") }.sorted()
    // kscope_* enums are kscope's own rules for what only macros define: nothing in DWARF.
    let enumNames = layout.enums.keys.filter { !$0.hasPrefix("kscope_") }.sorted()
    #expect(enumNames.contains("pageflags"))
    let text = try run([
      "pahole", "-F", "dwarf", "-C", (names + enumNames).joined(separator: ","), KernelCache.vmlinux(series),
    ])
    let pahole = try paholeLayouts(text)
    var checked = 0
    var sized = 0
    for name in names {
      let ours = try layout.userType(name)
      guard let theirs = pahole[name] else {
        Issue.record("pahole printed no struct \(name) (is dwarves installed? host/setup.sh)")
        continue
      }
      #expect(ours.size == theirs.size, "sizeof(\(name))")
      for member in ours.members {
        guard let other = theirs.members[member.name] else {
          Issue.record("pahole shows no \(name).\(member.name)")
          continue
        }
        #expect(member.offset == other.offset, "\(name).\(member.name)")
        #expect(member.bitfield?.position == other.bit, "\(name).\(member.name) bit position")
        // The member's size wherever the layout states one (its type's size, or a bitfield's
        // storage unit). A member whose type the layout does not record (struct
        // rw_semaphore in inode, ...) has no size in it to compare: only its offset is recorded.
        if let size = layout.byteSize(of: member.type) {
          #expect(size == other.size, "\(name).\(member.name) size")
          sized += 1
        }
        checked += 1
      }
    }
    #expect(checked > 600)
    #expect(sized > 500, "only \(sized) of \(checked) members sized")
    print("\(series): \(checked) members (\(sized) with a size in the layout), \(enumNames.count) enums checked against pahole -F dwarf")
    let enums = try paholeEnums(text)
    var constants = 0
    for name in enumNames {
      let ours = try #require(layout.enums[name])
      #expect(ours.constants == enums[name], "enum \(name)")
      constants += ours.constants.count
    }
    #expect(constants > 40)
    // page_type values: 6.12 has them in DWARF (enum pagetype, compared above when recorded);
    // 6.1's only exist as macros, so kscope records them as a rule (kscope_page_type) from the
    // release's include/linux/page-flags.h, which DWARF cannot confirm.
    if series == "6.12" { #expect(enumNames.contains("pagetype")) }
  }

  @Test func aMissingKernelFailsTheTestAndSaysWhatToRun() {
    withKnownIssue {
      #expect(KernelCache.release("6.1", root: "/nonexistent/kscope-cache") == nil)
    } matching: { issue in
      issue.comments.contains { $0.rawValue.contains("run host/setup.sh") }
    }
  }

  @Test func bzImageAndTruncatedVmlinuxAreRejected() throws {
    guard KernelCache.release("6.1") != nil else { return }
    let bzImage = "\(KernelCache.directory("6.1"))/vmlinuz"
    #expect(throws: DebugInfoError.notELF(path: bzImage)) {
      try LayoutExtractor.extract(vmlinux: bzImage)
    }
    let scratch = try ScratchDirectory()
    let handle = try #require(FileHandle(forReadingAtPath: KernelCache.vmlinux("6.1")))
    let head = try #require(try handle.read(upToCount: 1 << 20))
    let cut = try scratch.write("vmlinux-cut", Array(head))
    do {
      _ = try LayoutExtractor.extract(vmlinux: cut)
      Issue.record("a truncated vmlinux was accepted")
    } catch {
      guard case .truncated(let path, let detail) = error else {
        Issue.record("expected a truncation error, got \(error)")
        return
      }
      #expect(path == cut)
      #expect(detail.contains("file has 1048576 bytes"))
    }
  }

  @Test func missingStructsAndMembersAreNamed() throws {
    guard KernelCache.release("6.1") != nil else { return }
    let path = KernelCache.vmlinux("6.1")
    var request = LayoutRequest.default.adding(types: ["kscope_no_such_struct"])
    request.requiredMembers["page"]!.append(["no_such_member"])
    #expect(
      throws: DebugInfoError.incomplete(
        path: path, missing: ["type kscope_no_such_struct", "member page.no_such_member"])
    ) { try LayoutExtractor.extract(vmlinux: path, request: request) }
    // --types adds whatever the kernel has: a union, a struct, an enum, a typedef'd struct.
    let more = try LayoutExtractor.extract(
      vmlinux: path, request: .default.adding(types: ["slab", "pgd_t", "lru_list", "kmem_cache"]))
    #expect(try more.size(of: "pgd_t") == 8)
    #expect(try more.offset(of: "slab", member: "slab_cache") == 24)  // pahole -C slab
    #expect(try more.enumValue("lru_list", "LRU_INACTIVE_ANON") == 0)
    #expect(more.userTypes["kmem_cache"] != nil)
  }
}
