// The kernel layout's types from BTF, recorded exactly as the DWARF path records them (same
// base type names, anonymous types named `unnamed_<owner>_<member>`, anonymous members
// flattened, bitfields as storage unit + bit position), so that a layout from BTF and one from
// DWARF compare equal member for member.
//
// Where BTF cannot say what DWARF says, the difference is fixed here and documented in the
// README: an enum's underlying type is not in BTF (only its size and sign), so it is named
// after the C type GCC gives an enum of that size and sign.

/// Collects the wanted structs, unions and enums (and the base and anonymous types they use)
/// from a BTF blob.
public struct BTFTypeCollector {
  let btf: BTF
  public private(set) var baseTypes: [String: BaseType] = ["void": BaseType(size: 0, signed: false, kind: .void)]
  public private(set) var userTypes: [String: UserType] = [:]
  public private(set) var enums: [String: EnumType] = [:]
  /// Wanted names BTF did not define.
  public private(set) var notFound: [String] = []

  /// How far a chain of typedefs, qualifiers, pointers and arrays may go: deeper is a loop.
  static let maxDepth = 32
  /// How deep anonymous struct/union members may nest.
  static let maxNesting = 16
  /// Anonymous types being recorded inside one another (C cannot make an anonymous type refer
  /// to itself, so a chain this long is a loop in damaged BTF).
  var anonymousNesting = 0

  public init(btf: BTF) { self.btf = btf }

  /// Records each of `names` that BTF defines as a struct, union or enum (directly or
  /// through a typedef), the first definition by type id, as DWARF takes the first unit's.
  public mutating func collect(_ names: [String]) throws(BTFError) {
    let found = btf.ids(
      named: Set(names), kinds: [.structure, .union, .enumeration, .enum64, .typedef])
    for name in names where userTypes[name] == nil && enums[name] == nil {
      var done = false
      for id in found[name] ?? [] where !done {
        done = try record(name, id)
      }
      if !done { notFound.append(name) }
    }
  }

  /// Records a wanted type; false when the id does not define one (a typedef of an int).
  mutating func record(_ name: String, _ id: UInt32) throws(BTFError) -> Bool {
    var target = id
    if try btf.kind(id) == .typedef {
      guard let resolved = try strip(btf.sizeOrType(id)) else { return false }
      target = resolved
    }
    switch try btf.kind(target) {
    case .structure, .union:
      userTypes[name] = try userType(target, name: name)
      return true
    case .enumeration, .enum64:
      enums[name] = try enumType(target)
      return true
    default:
      return false
    }
  }

  // MARK: Structs and unions

  mutating func userType(_ id: UInt32, name: String) throws(BTFError) -> UserType {
    let kind: UserTypeKind = try btf.kind(id) == .union ? .union : .structure
    var members: [Member] = []
    try collectMembers(id, base: 0, owner: name, into: &members, depth: 0)
    members.sort(by: Member.layoutOrder)
    return UserType(kind: kind, size: Int(try btf.sizeOrType(id)), members: members)
  }

  mutating func collectMembers(
    _ id: UInt32, base: Int, owner: String, into members: inout [Member], depth: Int
  ) throws(BTFError) {
    guard depth < BTFTypeCollector.maxNesting else {
      throw BTFError("BTF: anonymous members of \(owner) nest too deeply (a type loop?)")
    }
    let structSize = Int(try btf.sizeOrType(id))
    for m in try btf.members(id) {
      let name = try btf.string(at: m.nameOffset)
      var bitOffset = Int(m.bitOffset)
      var bitSize = Int(m.bitfieldSize)
      // Without kind_flag a bitfield is an INT whose bit count is below its size.
      if bitSize == 0, let inner = try strip(m.type), try btf.kind(inner) == .int {
        let e = try btf.intEncoding(inner)
        let intBits = Int(try btf.sizeOrType(inner)) * 8
        if e.offset != 0 || e.bits != intBits {
          bitSize = e.bits
          bitOffset += e.offset
        }
      }
      guard bitOffset / 8 <= structSize else {
        throw BTFError("BTF: member \(owner).\(name.isEmpty ? "(anonymous)" : name) at bit \(bitOffset) lies outside its \(structSize)-byte type")
      }
      if bitSize > 0 {
        guard !name.isEmpty else { continue }  // unnamed padding (`int :3;`)
        members.append(try bitfield(m.type, name: name, owner: owner, absoluteBit: base * 8 + bitOffset, bitSize: bitSize))
        continue
      }
      guard bitOffset % 8 == 0 else {
        throw BTFError("BTF: member \(owner).\(name) starts at bit \(bitOffset), not on a byte")
      }
      let offset = base + bitOffset / 8
      if name.isEmpty {
        if let inner = try strip(m.type) {
          let k = try btf.kind(inner)
          if k == .structure || k == .union {
            try collectMembers(inner, base: offset, owner: owner, into: &members, depth: depth + 1)
          }
        }
        continue
      }
      let descriptor = try describe(m.type, anonymousName: "unnamed_\(owner)_\(name)", depth: 0)
      members.append(Member(name: name, offset: offset, type: descriptor))
    }
  }

  /// Storage unit offset (aligned to the storage type's size) and bit position, as the DWARF
  /// path computes them.
  mutating func bitfield(_ type: UInt32, name: String, owner: String, absoluteBit: Int, bitSize: Int)
    throws(BTFError) -> Member
  {
    guard let storageID = try strip(type), let storageSize = try byteSize(storageID), storageSize > 0
    else { throw BTFError("BTF: bitfield \(owner).\(name) has no sized type") }
    guard bitSize <= 128 else { throw BTFError("BTF: bitfield \(owner).\(name) is \(bitSize) bits wide") }
    let storage = try describe(type, anonymousName: "unnamed_\(owner)_\(name)", depth: 0)
    let unitBits = storageSize * 8
    var offset = absoluteBit / unitBits * storageSize
    var position = absoluteBit - offset * 8
    if position + bitSize > unitBits {  // straddles an aligned unit (packed structs)
      offset = absoluteBit / 8
      position = absoluteBit % 8
    }
    return Member(name: name, offset: offset, type: .bitfield(position: position, length: bitSize, storage: storage))
  }

  func byteSize(_ id: UInt32) throws(BTFError) -> Int? {
    switch try btf.kind(id) {
    case .int, .structure, .union, .enumeration, .enum64, .float: return Int(try btf.sizeOrType(id))
    case .pointer: return 8
    default: return nil
    }
  }

  // MARK: Type descriptors

  mutating func describe(_ id: UInt32, anonymousName: String, depth: Int) throws(BTFError) -> TypeDescriptor {
    if id == 0 { return .base("void") }
    guard depth < BTFTypeCollector.maxDepth else {
      throw BTFError("BTF: type chain of \(anonymousName) is too deep (a type loop?)")
    }
    let kind = try btf.kind(id)
    switch kind {
    case .int:
      let name = try btf.name(id)
      let baseName = name.isEmpty ? "int" : name
      if baseTypes[baseName] == nil { baseTypes[baseName] = try baseType(id, name: baseName) }
      return .base(baseName)
    case .float:
      let name = try btf.name(id)
      if baseTypes[name] == nil {
        baseTypes[name] = BaseType(size: Int(try btf.sizeOrType(id)), signed: true, kind: .float)
      }
      return .base(name)
    case .typedef:
      let name = try btf.name(id)
      return try describe(btf.sizeOrType(id), anonymousName: name.isEmpty ? anonymousName : name, depth: depth + 1)
    case .const, .volatile, .restrict, .typeTag:
      return try describe(btf.sizeOrType(id), anonymousName: anonymousName, depth: depth + 1)
    case .pointer:
      if baseTypes["pointer"] == nil { baseTypes["pointer"] = BaseType(size: 8, signed: false, kind: .int) }
      return .pointer(try describe(btf.sizeOrType(id), anonymousName: anonymousName, depth: depth + 1))
    case .array:
      let a = try btf.array(id)
      return .array(count: Int(a.count), of: try describe(a.element, anonymousName: anonymousName, depth: depth + 1))
    case .structure, .union:
      let name = try btf.name(id)
      if !name.isEmpty { return kind == .union ? .union(name) : .structure(name) }
      if userTypes[anonymousName] == nil {
        guard anonymousNesting < BTFTypeCollector.maxNesting else {
          throw BTFError("BTF: anonymous types nest too deeply under \(anonymousName.prefix(80)) (a type loop?)")
        }
        anonymousNesting += 1
        defer { anonymousNesting -= 1 }
        userTypes[anonymousName] = try userType(id, name: anonymousName)
      }
      return kind == .union ? .union(anonymousName) : .structure(anonymousName)
    case .forward:
      let name = try btf.name(id)
      return try btf.kindFlag(id) ? .union(name) : .structure(name)
    case .enumeration, .enum64:
      let name = try btf.name(id)
      if !name.isEmpty { return .enumeration(name) }
      if enums[anonymousName] == nil { enums[anonymousName] = try enumType(id) }
      return .enumeration(anonymousName)
    case .functionProto:
      return .function
    case .void, .function, .variable, .dataSection, .declTag:
      return .base("void")
    }
  }

  func baseType(_ id: UInt32, name: String) throws(BTFError) -> BaseType {
    let size = Int(try btf.sizeOrType(id))
    let e = try btf.intEncoding(id).encoding
    if e & 4 != 0 { return BaseType(size: size, signed: false, kind: .bool) }
    // pahole does not always set BTF_INT_CHAR: a char type is known by its name, as DWARF's
    // DW_ATE_*_char encodings tell.
    if e & 2 != 0 || name.hasSuffix("char") {
      return BaseType(size: size, signed: e & 1 != 0, kind: .char)
    }
    return BaseType(size: size, signed: e & 1 != 0, kind: .int)
  }

  // MARK: Enums

  mutating func enumType(_ id: UInt32) throws(BTFError) -> EnumType {
    let size = Int(try btf.sizeOrType(id))
    let signed = try btf.kindFlag(id)
    var constants: [String: Int64] = [:]
    for (nameOffset, value) in try btf.enumerators(id) {
      constants[try btf.string(at: nameOffset)] = value
    }
    // BTF keeps no underlying type: name the one GCC uses for an enum of this size and sign.
    let base: String
    switch (size, signed) {
    case (1, false): base = "unsigned char"
    case (1, true): base = "signed char"
    case (2, false): base = "short unsigned int"
    case (2, true): base = "short int"
    case (8, false): base = "long unsigned int"
    case (8, true): base = "long int"
    case (_, true): base = "int"
    default: base = "unsigned int"
    }
    if baseTypes[base] == nil {
      baseTypes[base] = BaseType(size: size, signed: signed, kind: size == 1 ? .char : .int)
    }
    return EnumType(size: size, base: base, constants: constants)
  }

  // MARK: Helpers

  /// The type behind typedefs and qualifiers (nil for void), bounded against loops.
  func strip(_ id: UInt32) throws(BTFError) -> UInt32? {
    var current = id
    for _ in 0..<BTFTypeCollector.maxDepth {
      if current == 0 { return nil }
      switch try btf.kind(current) {
      case .typedef, .const, .volatile, .restrict, .typeTag:
        current = try btf.sizeOrType(current)
      default:
        return current
      }
    }
    throw BTFError("BTF: typedef/qualifier chain from type \(id) does not end (a type loop?)")
  }
}

extension KernelLayout {
  /// The types `request` asks for from BTF, plus `symbols` (from the kernel's kallsyms or
  /// vmcoreinfo: BTF carries no addresses). Complete or an error naming what is missing.
  public static func fromBTF(
    _ btf: BTF, symbols: [String: Symbol], request: LayoutRequest = .default, sourceName: String,
    extraSources: [LayoutSource] = []
  ) throws(BTFError) -> KernelLayout {
    var partial = KernelLayout(symbols: symbols)
    var collector = BTFTypeCollector(btf: btf)
    try collector.collect(request.types + request.enumsToFind(release: partial.release))
    partial.sources = [LayoutSource(kind: "btf", name: sourceName)] + extraSources
    partial.baseTypes = collector.baseTypes
    partial.userTypes = collector.userTypes
    partial.enums = collector.enums
    let recorded = Set(collector.userTypes.keys).union(collector.enums.keys)
    do {
      return try partial.restricted(to: request, keepReferenced: { recorded.contains($0) })
    } catch {
      throw BTFError("layout from BTF (\(sourceName)): \(error.description)")
    }
  }
}
