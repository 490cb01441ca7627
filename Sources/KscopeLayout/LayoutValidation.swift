// The one validator for kernel layouts. A layout may come from a file someone else wrote (an
// import, --layout, the cache, a fetched debug package), so before any walker uses it, every
// way a layout comes in runs `validate(request:)`: sizes and counts are bounded, every member
// lies inside its struct, and what the walkers need is there. A layout that passes cannot make
// the walkers' offset arithmetic overflow or divide by zero.

extension KernelLayout {
  /// The largest struct, union, enum or base type accepted (pglist_data is ~170 KiB).
  public static let maxTypeSize = 1 << 24
  /// The largest array element count accepted.
  public static let maxArrayCount = 1 << 24
  /// A bitfield's position and length, in bits, stay inside a 64-byte storage unit.
  public static let maxBitfieldBits = 512

  /// Sizes the walkers divide by or step with: struct page is 64 bytes on x86-64 (up to a few
  /// hundred with debug options), mem_section a few words, one page at most.
  public static let requiredSizes: [String: ClosedRange<Int>] = [
    "page": 16...1024, "mem_section": 8...4096, "list_head": 16...16, "hlist_node": 16...16,
  ]

  /// Structural checks of any layout (also a partial one, as `layout show` prints): bounded
  /// sizes, member offsets and array counts; every member, with its size, inside its type;
  /// bitfields inside their storage unit; sane enum and base type sizes.
  public func validateStructure() throws(LayoutError) {
    // Names are printed by `layout show`: no control characters (terminal injection), bounded.
    func checkName(_ name: String, _ path: String) throws(LayoutError) {
      guard !name.isEmpty, name.utf8.count <= 256,
        !name.unicodeScalars.contains(where: {
          $0.value < 0x20 || ($0.value >= 0x7f && $0.value < 0xa0)
        })
      else {
        throw .invalidISF(path: path, reason: "a name with control characters, empty or too long")
      }
    }
    for name in baseTypes.keys { try checkName(name, "base_types") }
    for (name, e) in enums {
      try checkName(name, "enums")
      for c in e.constants.keys { try checkName(c, "enums.\(name).constants") }
    }
    for name in symbols.keys { try checkName(name, "symbols") }
    for (name, type) in userTypes {
      try checkName(name, "user_types")
      for m in type.members { try checkName(m.name, "user_types.\(name).fields") }
    }
    for (name, base) in baseTypes where base.size < 0 || base.size > 16 {
      throw .invalidISF(path: "base_types.\(name).size", reason: "\(base.size) bytes (0..16)")
    }
    for (name, e) in enums where e.size < 1 || e.size > 8 {
      throw .invalidISF(path: "enums.\(name).size", reason: "\(e.size) bytes (1..8)")
    }
    for (name, type) in userTypes.sorted(by: { $0.key < $1.key }) {
      let path = "user_types.\(name)"
      guard type.size >= 0, type.size <= KernelLayout.maxTypeSize else {
        throw .invalidISF(
          path: path + ".size", reason: "\(type.size) bytes (at most \(KernelLayout.maxTypeSize))")
      }
      for member in type.members {
        let where_ = "\(path).fields.\(member.name)"
        guard member.offset >= 0, member.offset <= type.size else {
          throw .invalidISF(
            path: where_ + ".offset",
            reason: "offset \(member.offset) is outside the \(type.size)-byte \(name)")
        }
        let size = try checkedSize(of: member.type, path: where_ + ".type", depth: 0)
        if let bits = member.bitfield {
          guard bits.position >= 0, bits.length > 0,
            bits.position + bits.length <= min(KernelLayout.maxBitfieldBits, 8 * max(size ?? 8, 1))
          else {
            throw .invalidISF(
              path: where_,
              reason: "bitfield bits \(bits.position)+\(bits.length) outside its storage unit")
          }
          // The storage unit of a trailing bitfield may reach past a packed struct's end; its
          // bits may not.
          guard member.offset * 8 + bits.position + bits.length <= type.size * 8 else {
            throw .invalidISF(
              path: where_, reason: "bitfield ends past the \(type.size)-byte \(name)")
          }
          continue
        }
        if let size {
          let (end, overflow) = member.offset.addingReportingOverflow(size)
          guard !overflow, end <= type.size else {
            throw .invalidISF(
              path: where_,
              reason:
                "\(size) bytes at offset \(member.offset) end past the \(type.size)-byte \(name)")
          }
        }
      }
    }
  }

  /// `validateStructure`, then everything `request` needs (types, members, enums, symbols),
  /// and sizes the walkers rely on in their ranges.
  public func validate(request: LayoutRequest) throws(LayoutError) {
    try validateStructure()
    let missing = request.missing(in: self)
    guard missing.isEmpty else { throw .incomplete(missing: missing) }
    for name in request.types {
      guard let type = userTypes[name] else { continue }
      let range = KernelLayout.requiredSizes[name] ?? 1...KernelLayout.maxTypeSize
      guard range.contains(type.size) else {
        throw .invalidISF(
          path: "user_types.\(name).size",
          reason: "\(type.size) bytes (expected \(range.lowerBound)..\(range.upperBound))")
      }
    }
  }

  /// A descriptor's size in bytes with every multiplication checked; nil when it refers to a
  /// type the layout lacks (or a function). Throws on overflow or a size past the limit.
  func checkedSize(of type: TypeDescriptor, path: String, depth: Int) throws(LayoutError) -> Int? {
    guard depth < 32 else { throw .invalidISF(path: path, reason: "types nest too deeply") }
    switch type {
    case .base(let name): return baseTypes[name]?.size
    case .pointer: return baseTypes["pointer"]?.size ?? 8
    case .array(let count, let inner):
      guard count >= 0, count <= KernelLayout.maxArrayCount else {
        throw .invalidISF(
          path: path + ".count", reason: "\(count) elements (at most \(KernelLayout.maxArrayCount))"
        )
      }
      guard let element = try checkedSize(of: inner, path: path + ".subtype", depth: depth + 1)
      else { return nil }
      let (total, overflow) = element.multipliedReportingOverflow(by: count)
      guard !overflow, total <= KernelLayout.maxTypeSize else {
        throw .invalidISF(path: path, reason: "array of \(count) x \(element) bytes is too large")
      }
      return total
    case .structure(let name), .union(let name): return userTypes[name]?.size
    case .enumeration(let name): return enums[name]?.size
    case .function: return nil
    case .bitfield(_, _, let storage):
      return try checkedSize(of: storage, path: path + ".type", depth: depth + 1)
    }
  }
}
