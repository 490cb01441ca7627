import Foundation
import KscopeDebugInfo
import KscopeKernelImage
import KscopeLayout
import Testing

/// BTF flattens a multi-dimensional array into one dimension of all its elements (pahole
/// encodes `marks[3][1]` as `[3]`): the only way a layout from BTF legitimately differs from
/// one from DWARF. Same element type, same total count, same bytes.
func flattenArrays(_ d: TypeDescriptor) -> TypeDescriptor {
  switch d {
  case .array(let count, let inner):
    var total = count
    var element = flattenArrays(inner)
    while case .array(let c, let e) = element {
      total *= c
      element = e
    }
    return .array(count: total, of: element)
  case .pointer(let inner): return .pointer(flattenArrays(inner))
  case .bitfield(let p, let l, let s): return .bitfield(position: p, length: l, storage: flattenArrays(s))
  default: return d
  }
}

/// Every difference between two layouts' types, enums, base types and symbols, one per line
/// (multi-dimensional arrays compared flattened).
func layoutDifferences(_ a: KernelLayout, _ b: KernelLayout) -> [String] {
  var out: [String] = []
  for name in Set(a.userTypes.keys).union(b.userTypes.keys).sorted() {
    guard let x = a.userTypes[name], let y = b.userTypes[name] else {
      out.append("type \(name) only in \(a.userTypes[name] == nil ? "second" : "first")")
      continue
    }
    if x.size != y.size || x.kind != y.kind { out.append("type \(name): size/kind \(x.size) vs \(y.size)") }
    let xs = x.members.map { Member(name: $0.name, offset: $0.offset, type: flattenArrays($0.type)) }
    let ys = y.members.map { Member(name: $0.name, offset: $0.offset, type: flattenArrays($0.type)) }
    if xs != ys {
      for m in Set(xs.map(\.name)).union(ys.map(\.name)).sorted() {
        let p = xs.first { $0.name == m }, q = ys.first { $0.name == m }
        if p != q { out.append("\(name).\(m): \(String(describing: p)) vs \(String(describing: q))") }
      }
    }
  }
  if a.enums != b.enums {
    for name in Set(a.enums.keys).union(b.enums.keys).sorted() where a.enums[name] != b.enums[name] {
      out.append("enum \(name): \(String(describing: a.enums[name])) vs \(String(describing: b.enums[name]))")
    }
  }
  if a.baseTypes != b.baseTypes { out.append("base types: \(a.baseTypes) vs \(b.baseTypes)") }
  for name in Set(a.symbols.keys).union(b.symbols.keys).sorted() where a.symbols[name] != b.symbols[name] {
    out.append("symbol \(name): \(String(describing: a.symbols[name])) vs \(String(describing: b.symbols[name]))")
  }
  return out
}

/// The same answers from the kernel's own BTF + kallsyms (its vmlinuz, as shipped) as from the
/// -dbg package's DWARF + .symtab, for the pinned kernels.
@Suite(.serialized) struct BTFEquivalenceTests {
  @Test(arguments: ["6.1", "6.12"]) func vmlinuzLayoutEqualsDWARFLayout(series: String) throws {
    guard KernelCache.release(series) != nil else { return }
    let dir = KernelCache.directory(series)
    let dwarf = try LayoutExtractor.extract(vmlinux: dir + "/vmlinux")
    let btf = try KernelImageFile.layout(path: dir + "/vmlinuz")
    #expect(btf.sources.map(\.kind) == ["btf", "kallsyms"])
    #expect(btf.buildID == dwarf.buildID && btf.release == dwarf.release)
    let diffs = layoutDifferences(btf, dwarf)
    #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    // The flattening is real and limited to arrays: xa_node.marks is [3][1] in DWARF.
    #expect(btf.userTypes["xa_node"]?.member(named: "marks")?.type != dwarf.userTypes["xa_node"]?.member(named: "marks")?.type)
    // The facts the analyzer derives agree too.
    #expect(try btf.pageTypeEncoding() == dwarf.pageTypeEncoding())
  }

  /// A raw BTF blob (what /sys/kernel/btf/vmlinux serves) gives the same types, and no symbols.
  @Test func rawBTFGivesTheSameTypes() throws {
    guard KernelCache.release("6.12") != nil else { return }
    let dir = KernelCache.directory("6.12")
    let elf = try Data(contentsOf: URL(fileURLWithPath: dir + "/vmlinuz")).withUnsafeBytes {
      try KernelImageFile.decompressELF($0)
    }
    let blob = try elf.withUnsafeBytes { raw -> [UInt8] in
      let s = try ElfSections(raw).section(".BTF")!
      return Array(raw[s.offset..<(s.offset + s.size)])
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("kscope-btf-\(getpid())").path
    #expect(FileManager.default.createFile(atPath: path, contents: Data(blob)))
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(throws: BTFError.self) { try KernelImageFile.layout(path: path) }
    let typesOnly = try KernelImageFile.layout(path: path, typesOnly: true)
    let full = try KernelImageFile.layout(path: dir + "/vmlinuz")
    #expect(typesOnly.userTypes == full.userTypes && typesOnly.enums == full.enums)
    #expect(typesOnly.symbols.isEmpty)
  }
}
