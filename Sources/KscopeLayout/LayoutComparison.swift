// Comparing two layouts of one kernel (from BTF and from DWARF): what the walkers could read
// differently. BTF flattens a multi-dimensional array into one dimension of all its elements
// (pahole encodes `marks[3][1]` as `[3]`), so arrays are compared flattened: same element
// type, same total count, same bytes. Everything else must be equal.

extension TypeDescriptor {
  /// The descriptor with nested arrays folded into one.
  public var flatteningArrays: TypeDescriptor {
    switch self {
    case .array(let count, let inner):
      var total = count
      var element = inner.flatteningArrays
      while case .array(let c, let e) = element {
        total = total.multipliedReportingOverflow(by: c).partialValue
        element = e
      }
      return .array(count: total, of: element)
    case .pointer(let inner): return .pointer(inner.flatteningArrays)
    case .bitfield(let p, let l, let s): return .bitfield(position: p, length: l, storage: s.flatteningArrays)
    default: return self
    }
  }
}

extension KernelLayout {
  /// Every difference in types, members, enums, base types and symbols, one per line (arrays
  /// compared flattened); empty when the walkers would read both the same.
  public func differences(from other: KernelLayout) -> [String] {
    let a = self, b = other
    var out: [String] = []
    for name in Set(a.userTypes.keys).union(b.userTypes.keys).sorted() {
      guard let x = a.userTypes[name], let y = b.userTypes[name] else {
        out.append("type \(name) only in the \(a.userTypes[name] == nil ? "second" : "first") layout")
        continue
      }
      if x.size != y.size || x.kind != y.kind { out.append("type \(name): size \(x.size) vs \(y.size)") }
      let xs = x.members.map { Member(name: $0.name, offset: $0.offset, type: $0.type.flatteningArrays) }
      let ys = y.members.map { Member(name: $0.name, offset: $0.offset, type: $0.type.flatteningArrays) }
      guard xs != ys else { continue }
      for m in Set(xs.map(\.name)).union(ys.map(\.name)).sorted() {
        let p = xs.first { $0.name == m }, q = ys.first { $0.name == m }
        if p != q { out.append("\(name).\(m): \(p.map { "\($0)" } ?? "absent") vs \(q.map { "\($0)" } ?? "absent")") }
      }
    }
    for name in Set(a.enums.keys).union(b.enums.keys).sorted() where a.enums[name] != b.enums[name] {
      out.append("enum \(name): \(a.enums[name].map { "\($0)" } ?? "absent") vs \(b.enums[name].map { "\($0)" } ?? "absent")")
    }
    for name in Set(a.baseTypes.keys).union(b.baseTypes.keys).sorted() where a.baseTypes[name] != b.baseTypes[name] {
      out.append("base type \(name): \(a.baseTypes[name].map { "\($0)" } ?? "absent") vs \(b.baseTypes[name].map { "\($0)" } ?? "absent")")
    }
    for name in Set(a.symbols.keys).union(b.symbols.keys).sorted() where a.symbols[name] != b.symbols[name] {
      out.append("symbol \(name): \(a.symbols[name].map { "\($0)" } ?? "absent") vs \(b.symbols[name].map { "\($0)" } ?? "absent")")
    }
    return out
  }
}
