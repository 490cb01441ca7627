// Human-readable layouts, in the spirit of `pahole -C`: one member per line with its C type,
// offset and size (bitfields as offset:bit and a length in bits). Anonymous structs and unions
// are shown flattened, with absolute offsets, as the layout keeps them.

extension KernelLayout {
  /// The C spelling of a descriptor around a declarator (`struct page *`, `char comm[16]`).
  public func cDeclaration(_ type: TypeDescriptor, _ declarator: String) -> String {
    switch type {
    case .base(let name): return "\(name) \(declarator)"
    case .structure(let name): return "struct \(name) \(declarator)"
    case .union(let name): return "union \(name) \(declarator)"
    case .enumeration(let name): return "enum \(name) \(declarator)"
    case .function: return "void (\(declarator))()"
    case .pointer(let inner):
      if case .function = inner { return "void (*\(declarator))()" }
      if case .array = inner { return cDeclaration(inner, "(*\(declarator))") }
      return cDeclaration(inner, "*\(declarator)")
    case .array(let count, let inner): return cDeclaration(inner, "\(declarator)[\(count)]")
    case .bitfield(_, let length, let storage):
      return cDeclaration(storage, "\(declarator):\(length)")
    }
  }

  /// Size in bytes of a value of `type`; nil when it refers to a type the layout lacks.
  public func byteSize(of type: TypeDescriptor) -> Int? {
    switch type {
    case .base(let name): return baseTypes[name]?.size
    case .pointer: return baseTypes["pointer"]?.size ?? 8
    case .array(let count, let inner):
      // Counts come from files: an overflowing size is unknown, not a trap.
      guard let element = byteSize(of: inner) else { return nil }
      let (total, overflow) = element.multipliedReportingOverflow(by: count)
      return overflow ? nil : total
    case .structure(let name), .union(let name): return userTypes[name]?.size
    case .enumeration(let name): return enums[name]?.size
    case .function: return nil
    case .bitfield(_, _, let storage): return byteSize(of: storage)
    }
  }

  /// The struct, union or enum a member's type needs that the layout lacks, if any.
  func unrecordedName(_ type: TypeDescriptor) -> String? {
    switch type {
    case .structure(let name), .union(let name): return userTypes[name] == nil ? name : nil
    case .enumeration(let name): return enums[name] == nil ? name : nil
    case .array(_, let inner): return unrecordedName(inner)
    case .base(let name): return baseTypes[name] == nil ? name : nil
    case .pointer, .function, .bitfield: return nil
    }
  }

  /// `struct name { ... }` with offsets and sizes, or the enum's constants.
  public func describe(type name: String) throws(LayoutError) -> String {
    if let type = userTypes[name] {
      var lines = ["\(type.kind.rawValue) \(name) {"]
      var unrecorded: [String] = []
      for member in type.members {
        let declaration = cDeclaration(member.type, member.name) + ";"
        let place: String
        if let bits = member.bitfield {
          place = "\(member.offset):\(bits.position) \(bits.length) bits"
        } else {
          // A member whose type the layout does not record has no known size: say so, and
          // how to record it, rather than print "?".
          if let size = byteSize(of: member.type) {
            place = "\(member.offset) \(size)"
          } else {
            place = "\(member.offset), size not recorded"
            if let missing = unrecordedName(member.type), !unrecorded.contains(missing) {
              unrecorded.append(missing)
            }
          }
        }
        let padded =
          declaration.count < 48
          ? declaration + String(repeating: " ", count: 48 - declaration.count) : declaration
        lines.append("\t\(padded) /* \(place) */")
      }
      lines.append("")
      lines.append("\t/* size: \(type.size), members: \(type.members.count) */")
      if !unrecorded.isEmpty {
        lines.append(
          "\t/* not recorded: \(unrecorded.joined(separator: ", ")) (kscope layout extract --types \(unrecorded.joined(separator: ",")) records them) */"
        )
      }
      lines.append("};")
      return lines.joined(separator: "\n")
    }
    if let type = enums[name] {
      var lines = ["enum \(name) {  /* size: \(type.size), base: \(type.base) */"]
      for (constant, value) in type.constants.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }
      ) {
        lines.append("\t\(constant) = \(value),")
      }
      lines.append("};")
      return lines.joined(separator: "\n")
    }
    throw .missingType(name)
  }

  /// A summary: release, build id, sources, counts, page_type encoding and every symbol.
  public func summary() -> String {
    var lines: [String] = []
    lines.append("release:   \(release ?? "(unknown)")")
    lines.append("build id:  \(buildID ?? "(none)")")
    lines.append("source:    \(sources.map { "\($0.name) (\($0.kind))" }.joined(separator: ", "))")
    lines.append("producer:  \(producer.name) \(producer.version)")
    lines.append(
      "types:     \(userTypes.count) structs/unions, \(enums.count) enums, \(baseTypes.count) base types"
    )
    let encoding: String
    if enums[PageTypeEncoding.dwarfEnumName] != nil {
      encoding = "DWARF enum pagetype (top byte of page_type)"
    } else if enums[PageTypeEncoding.ruleEnumName] != nil {
      encoding = "kscope rule for this release (\(PageTypeEncoding.ruleEnumName))"
    } else {
      encoding = "unknown"
    }
    lines.append("page_type: \(encoding)")
    lines.append("symbols:")
    for (name, symbol) in symbols.sorted(by: { $0.key < $1.key }) {
      lines.append("  \(symbol.address)  \(name)")
    }
    lines.append("structs:   \(userTypes.keys.sorted().joined(separator: " "))")
    lines.append("enums:     \(enums.keys.sorted().joined(separator: " "))")
    return lines.joined(separator: "\n")
  }
}
