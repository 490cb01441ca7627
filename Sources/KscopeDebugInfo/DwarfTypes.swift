import CElfutils
import KscopeOS
import KscopeLayout

// Types from the vmlinux's DWARF through libdw.
//
// Why it is fast: every compilation unit carries its own copy of the types it uses, so the
// first units that include <linux/mm_types.h> already define struct page, task_struct, ...
// We walk only the top-level DIEs of each unit (dwarf_child + dwarf_siblingof; siblings skip
// whole subtrees through DW_AT_sibling), read a name only for struct/union/enum/typedef DIEs,
// and stop at the first unit boundary after the last wanted type was found. Only the DIEs
// we touch are paged in from the mmapped file, which keeps both time and RSS small.
//
// libdw values (Dwarf_Die, Dwarf_Attribute) are plain C structs passed by pointer; they stay
// inside this file.

/// Names still wanted, matched against C strings without building a Swift String per DIE.
struct NameMatcher {
  private var byLength: [Int: [(name: String, bytes: [UInt8])]] = [:]
  private(set) var count = 0

  init(_ names: [String]) {
    for name in Set(names) {
      byLength[name.utf8.count, default: []].append((name, Array(name.utf8)))
      count += 1
    }
  }

  var isEmpty: Bool { count == 0 }
  var remaining: [String] { byLength.values.flatMap { $0.map(\.name) }.sorted() }

  func match(_ cString: UnsafePointer<CChar>) -> String? {
    let length = Memory.cStringLength(cString, max: Int.max)
    guard let candidates = byLength[length] else { return nil }
    for candidate in candidates where Memory.equal(cString, candidate.bytes, count: length) {
      return candidate.name
    }
    return nil
  }

  mutating func remove(_ name: String) {
    let length = name.utf8.count
    guard let candidates = byLength[length],
      let index = candidates.firstIndex(where: { $0.name == name })
    else {
      return
    }
    byLength[length]!.remove(at: index)
    if byLength[length]!.isEmpty { byLength[length] = nil }
    count -= 1
  }
}

/// Collects the wanted types (and the base types and anonymous types they use).
struct TypeCollector: ~Copyable {
  let path: String
  private let dwarf: OpaquePointer
  private var wanted: NameMatcher
  private(set) var baseTypes: [String: BaseType] = [:]
  private(set) var userTypes: [String: UserType] = [:]
  private(set) var enums: [String: EnumType] = [:]
  /// Compilation units read before everything was found (for the benchmark's report).
  private(set) var unitsScanned = 0

  init(elf: borrowing ElfFile, wanted names: [String]) throws(DebugInfoError) {
    path = elf.path
    guard elf.section(named: ".debug_info") != nil else { throw .noDebugInfo(path: elf.path) }
    guard let handle = dwarf_begin_elf(elf.elf, DWARF_C_READ, nil) else {
      throw .libdw(
        path: elf.path, operation: "dwarf_begin_elf", message: TypeCollector.dwarfMessage())
    }
    dwarf = handle
    wanted = NameMatcher(names)
    baseTypes["void"] = BaseType(size: 0, signed: false, kind: .void)
  }

  deinit { dwarf_end(dwarf) }

  static func dwarfMessage() -> String { String(cString: dwarf_errmsg(-1)) }

  /// Names that no unit defined (after `scan`).
  var notFound: [String] { wanted.remaining }

  /// Walks the compilation units until every wanted type is found or the units run out.
  mutating func scan() throws(DebugInfoError) {
    var offset: Dwarf_Off = 0
    while !wanted.isEmpty {
      var next: Dwarf_Off = 0
      var headerSize = 0
      let rc = dwarf_nextcu(dwarf, offset, &next, &headerSize, nil, nil, nil)
      if rc > 0 { break }  // no more units
      guard rc == 0 else {
        throw .libdw(path: path, operation: "dwarf_nextcu", message: TypeCollector.dwarfMessage())
      }
      var unit = Dwarf_Die()
      guard dwarf_offdie(dwarf, offset + Dwarf_Off(headerSize), &unit) != nil else {
        throw .libdw(path: path, operation: "dwarf_offdie", message: TypeCollector.dwarfMessage())
      }
      try scanUnit(&unit)
      unitsScanned += 1
      offset = next
    }
  }

  private mutating func scanUnit(_ unit: inout Dwarf_Die) throws(DebugInfoError) {
    var die = Dwarf_Die()
    guard dwarf_child(&unit, &die) == 0 else { return }
    repeat {
      let tag = tagOf(&die)
      if tag == DW_TAG_structure_type || tag == DW_TAG_union_type || tag == DW_TAG_enumeration_type
        || tag == DW_TAG_typedef, let cName = dwarf_diename(&die), let name = wanted.match(cName),
        !dwarf_hasattr(&die, UInt32(DW_AT_declaration)).asBool
      {
        if try record(name, &die) { wanted.remove(name) }
      }
    } while try nextSibling(&die)
  }

  /// Records a wanted type; false when the DIE turned out not to define one (a typedef of
  /// an integer, say).
  private mutating func record(_ name: String, _ die: inout Dwarf_Die) throws(DebugInfoError)
    -> Bool
  {
    var target = die
    if tagOf(&die) == DW_TAG_typedef {
      guard let resolved = strip(typeOf(&die)) else { return false }
      target = resolved
    }
    switch tagOf(&target) {
    case DW_TAG_structure_type, DW_TAG_union_type, DW_TAG_class_type:
      if dwarf_hasattr(&target, UInt32(DW_AT_declaration)).asBool { return false }
      userTypes[name] = try userType(&target, name: name)
      return true
    case DW_TAG_enumeration_type:
      enums[name] = try enumType(&target)
      return true
    default:
      return false
    }
  }

  // MARK: Structs and unions

  private mutating func userType(_ die: inout Dwarf_Die, name: String) throws(DebugInfoError)
    -> UserType
  {
    let kind: UserTypeKind = tagOf(&die) == DW_TAG_union_type ? .union : .structure
    guard let size = unsigned(&die, DW_AT_byte_size) else {
      throw .badDWARF(path: path, detail: "struct \(name) has no size")
    }
    var members: [Member] = []
    try collectMembers(&die, base: 0, owner: name, into: &members, depth: 0)
    // ISF fields are an unordered JSON object, so a layout read back from a file can only
    // know them by offset: use that order here too, so both compare equal.
    members.sort(by: Member.layoutOrder)
    return UserType(kind: kind, size: Int(size), members: members)
  }

  /// Appends the members of a struct or union DIE, flattening anonymous struct/union
  /// members into `members` with offsets relative to the outermost type.
  private mutating func collectMembers(
    _ die: inout Dwarf_Die, base: Int, owner: String, into members: inout [Member], depth: Int
  ) throws(DebugInfoError) {
    guard depth < 16 else {
      throw .badDWARF(path: path, detail: "anonymous members of \(owner) nest too deeply")
    }
    var child = Dwarf_Die()
    guard dwarf_child(&die, &child) == 0 else { return }
    repeat {
      guard tagOf(&child) == DW_TAG_member else { continue }
      let offset = base + (try memberOffset(&child, owner: owner))
      let name = dwarf_diename(&child).map { String(cString: $0) }
      let type = typeOf(&child)
      if let bitSize = unsigned(&child, DW_AT_bit_size) {
        guard let name else { continue }  // unnamed padding (`int :3;`)
        members.append(
          try bitfield(
            &child, name: name, owner: owner, type: type, base: base, bitSize: Int(bitSize)))
        continue
      }
      guard let name else {
        if var inner = strip(type) {
          let tag = tagOf(&inner)
          if tag == DW_TAG_structure_type || tag == DW_TAG_union_type {
            try collectMembers(&inner, base: offset, owner: owner, into: &members, depth: depth + 1)
          }
        }
        continue
      }
      let descriptor = try describe(type, anonymousName: "unnamed_\(owner)_\(name)", depth: 0)
      members.append(Member(name: name, offset: offset, type: descriptor))
    } while try nextSibling(&child)
  }

  private func memberOffset(_ die: inout Dwarf_Die, owner: String) throws(DebugInfoError) -> Int {
    var attribute = Dwarf_Attribute()
    // Union members and DWARF 4+ bitfields have no location: they start at the parent's 0.
    guard dwarf_attr(&die, UInt32(DW_AT_data_member_location), &attribute) != nil else { return 0 }
    var value: Dwarf_Word = 0
    if dwarf_formudata(&attribute, &value) == 0 { return Int(value) }
    // DWARF 2 style: a location expression DW_OP_plus_uconst N.
    var ops: UnsafeMutablePointer<Dwarf_Op>? = nil
    var count = 0
    if dwarf_getlocation(&attribute, &ops, &count) == 0, count == 1, let op = ops?.pointee,
      op.atom == UInt8(DW_OP_plus_uconst)
    {
      return Int(op.number)
    }
    throw .badDWARF(
      path: path, detail: "member of \(owner) has an unsupported data_member_location")
  }

  /// A bitfield as ISF describes it: the storage unit's byte offset (aligned to the storage
  /// type's size, as pahole prints it) and the bit position above that unit's lowest bit.
  private mutating func bitfield(
    _ die: inout Dwarf_Die, name: String, owner: String, type: Dwarf_Die?, base: Int, bitSize: Int
  ) throws(DebugInfoError) -> Member {
    guard var storageDie = strip(type), let storageSize = unsigned(&storageDie, DW_AT_byte_size),
      storageSize > 0
    else { throw .badDWARF(path: path, detail: "bitfield \(owner).\(name) has no sized type") }
    let storage = try describe(type, anonymousName: "unnamed_\(owner)_\(name)", depth: 0)
    let absoluteBit: Int
    if let dataBitOffset = unsigned(&die, DW_AT_data_bit_offset) {
      absoluteBit = base * 8 + Int(dataBitOffset)
    } else if let bitOffset = unsigned(&die, DW_AT_bit_offset) {
      // DWARF 2/3: counted from the most significant bit of a unit at data_member_location.
      let unitSize = Int(unsigned(&die, DW_AT_byte_size) ?? storageSize)
      let location = base + (try memberOffset(&die, owner: owner))
      absoluteBit = location * 8 + unitSize * 8 - Int(bitOffset) - bitSize
    } else {
      absoluteBit = (base + (try memberOffset(&die, owner: owner))) * 8
    }
    let unitBits = Int(storageSize) * 8
    var offset = absoluteBit / unitBits * Int(storageSize)
    var position = absoluteBit - offset * 8
    if position + bitSize > unitBits {  // straddles an aligned unit (packed structs)
      offset = absoluteBit / 8
      position = absoluteBit % 8
    }
    return Member(
      name: name, offset: offset,
      type: .bitfield(position: position, length: bitSize, storage: storage))
  }

  // MARK: Type descriptors

  /// The ISF descriptor of a type DIE (nil = void). Named structs, unions and enums are
  /// referenced by name; anonymous ones are recorded under `anonymousName`.
  private mutating func describe(_ die: Dwarf_Die?, anonymousName: String, depth: Int)
    throws(DebugInfoError)
    -> TypeDescriptor
  {
    guard var die else { return .base("void") }
    guard depth < 32 else {
      throw .badDWARF(path: path, detail: "type chain of \(anonymousName) is too deep")
    }
    let tag = tagOf(&die)
    switch tag {
    case DW_TAG_base_type:
      let name = dwarf_diename(&die).map { String(cString: $0) } ?? "int"
      if baseTypes[name] == nil { baseTypes[name] = baseType(&die) }
      return .base(name)
    case DW_TAG_typedef:
      // `typedef struct { int counter; } atomic_t;`: the anonymous type takes the typedef's
      // name, so every atomic_t member shares one recorded type.
      let name = dwarf_diename(&die).map { String(cString: $0) } ?? anonymousName
      return try describe(typeOf(&die), anonymousName: name, depth: depth + 1)
    case DW_TAG_const_type, DW_TAG_volatile_type, DW_TAG_restrict_type, DW_TAG_atomic_type:
      return try describe(typeOf(&die), anonymousName: anonymousName, depth: depth + 1)
    case DW_TAG_pointer_type, DW_TAG_reference_type:
      if baseTypes["pointer"] == nil {
        let size = Int(unsigned(&die, DW_AT_byte_size) ?? 8)
        baseTypes["pointer"] = BaseType(size: size, signed: false, kind: .int)
      }
      return .pointer(try describe(typeOf(&die), anonymousName: anonymousName, depth: depth + 1))
    case DW_TAG_array_type:
      var element = try describe(typeOf(&die), anonymousName: anonymousName, depth: depth + 1)
      for count in try arrayCounts(&die).reversed() { element = .array(count: count, of: element) }
      return element
    case DW_TAG_structure_type, DW_TAG_union_type, DW_TAG_class_type:
      let isUnion = tag == DW_TAG_union_type
      if let cName = dwarf_diename(&die) {
        let name = String(cString: cName)
        return isUnion ? .union(name) : .structure(name)
      }
      if userTypes[anonymousName] == nil {
        userTypes[anonymousName] = try userType(&die, name: anonymousName)
      }
      return isUnion ? .union(anonymousName) : .structure(anonymousName)
    case DW_TAG_enumeration_type:
      if let cName = dwarf_diename(&die) { return .enumeration(String(cString: cName)) }
      if enums[anonymousName] == nil { enums[anonymousName] = try enumType(&die) }
      return .enumeration(anonymousName)
    case DW_TAG_subroutine_type:
      return .function
    default:
      return .base("void")
    }
  }

  private func baseType(_ die: inout Dwarf_Die) -> BaseType {
    let size = Int(unsigned(&die, DW_AT_byte_size) ?? 0)
    switch Int(truncatingIfNeeded: unsigned(&die, DW_AT_encoding) ?? 0) {
    case DW_ATE_boolean: return BaseType(size: size, signed: false, kind: .bool)
    case DW_ATE_float: return BaseType(size: size, signed: true, kind: .float)
    case DW_ATE_signed_char: return BaseType(size: size, signed: true, kind: .char)
    case DW_ATE_unsigned_char: return BaseType(size: size, signed: false, kind: .char)
    case DW_ATE_signed: return BaseType(size: size, signed: true, kind: .int)
    default: return BaseType(size: size, signed: false, kind: .int)
    }
  }

  /// Element counts of each dimension; 0 for a flexible array member (no bound).
  private func arrayCounts(_ die: inout Dwarf_Die) throws(DebugInfoError) -> [Int] {
    var counts: [Int] = []
    var child = Dwarf_Die()
    guard dwarf_child(&die, &child) == 0 else { return [0] }
    repeat {
      guard tagOf(&child) == DW_TAG_subrange_type else { continue }
      if let count = unsigned(&child, DW_AT_count) {
        counts.append(Int(clamping: count))
      } else if let upper = signed(&child, DW_AT_upper_bound), upper >= 0 {
        counts.append(Int(clamping: upper + 1))
      } else {
        counts.append(0)
      }
    } while try nextSibling(&child)
    return counts.isEmpty ? [0] : counts
  }

  // MARK: Enums

  private mutating func enumType(_ die: inout Dwarf_Die) throws(DebugInfoError) -> EnumType {
    let size = Int(unsigned(&die, DW_AT_byte_size) ?? 4)
    var isSigned = false
    var baseName: String? = nil
    if var underlying = strip(typeOf(&die)), tagOf(&underlying) == DW_TAG_base_type {
      let name = dwarf_diename(&underlying).map { String(cString: $0) } ?? "int"
      let base = baseType(&underlying)
      if baseTypes[name] == nil { baseTypes[name] = base }
      isSigned = base.signed
      baseName = name
    }
    var constants: [String: Int64] = [:]
    var child = Dwarf_Die()
    if dwarf_child(&die, &child) == 0 {
      repeat {
        guard tagOf(&child) == DW_TAG_enumerator, let cName = dwarf_diename(&child) else {
          continue
        }
        var attribute = Dwarf_Attribute()
        guard dwarf_attr(&child, UInt32(DW_AT_const_value), &attribute) != nil else { continue }
        constants[String(cString: cName)] = try enumeratorValue(&attribute, signed: isSigned)
      } while try nextSibling(&child)
    }
    if baseName == nil {
      // No DW_AT_type (older compilers): name the base by size and sign, as dwarf2json does.
      let negative = constants.values.contains { $0 < 0 }
      let names = [1: "char", 2: "short", 4: "int", 8: "long"]
      let stem = names[size] ?? "int"
      baseName =
        negative
        ? (stem == "char" ? "signed char" : stem)
        : (stem == "char" ? "unsigned char" : "\(stem) unsigned int")
      if baseName == "int unsigned int" { baseName = "unsigned int" }
      if baseTypes[baseName!] == nil {
        baseTypes[baseName!] = BaseType(size: size, signed: negative, kind: .int)
      }
    }
    return EnumType(size: size, base: baseName!, constants: constants)
  }

  /// An enumerator's value: DW_FORM_dataN carry no sign, so they are sign-extended only
  /// when the enum's underlying type is signed.
  private func enumeratorValue(_ attribute: inout Dwarf_Attribute, signed: Bool)
    throws(DebugInfoError) -> Int64
  {
    let form = dwarf_whatform(&attribute)
    if form == UInt32(DW_FORM_sdata) || form == UInt32(DW_FORM_implicit_const) {
      var value: Dwarf_Sword = 0
      guard dwarf_formsdata(&attribute, &value) == 0 else {
        throw .libdw(
          path: path, operation: "dwarf_formsdata", message: TypeCollector.dwarfMessage())
      }
      return Int64(value)
    }
    var raw: Dwarf_Word = 0
    guard dwarf_formudata(&attribute, &raw) == 0 else {
      throw .libdw(path: path, operation: "dwarf_formudata", message: TypeCollector.dwarfMessage())
    }
    let bits: UInt64
    switch form {
    case UInt32(DW_FORM_data1): bits = 8
    case UInt32(DW_FORM_data2): bits = 16
    case UInt32(DW_FORM_data4): bits = 32
    default: bits = 64
    }
    if signed, bits < 64, raw & (1 << (bits - 1)) != 0 {
      return Int64(bitPattern: raw | ~((1 << bits) - 1))
    }
    return Int64(bitPattern: raw)
  }

  // MARK: Attribute helpers

  /// Moves `die` to its next sibling; false after the last one. A libdw error is thrown, not
  /// taken for the end: a walk cut short would silently miss types.
  private func nextSibling(_ die: inout Dwarf_Die) throws(DebugInfoError) -> Bool {
    var current = die
    let rc = dwarf_siblingof(&current, &die)
    guard rc >= 0 else {
      throw .libdw(path: path, operation: "dwarf_siblingof", message: TypeCollector.dwarfMessage())
    }
    return rc == 0
  }

  private func typeOf(_ die: inout Dwarf_Die) -> Dwarf_Die? {
    var attribute = Dwarf_Attribute()
    guard dwarf_attr_integrate(&die, UInt32(DW_AT_type), &attribute) != nil else { return nil }
    var result = Dwarf_Die()
    guard dwarf_formref_die(&attribute, &result) != nil else { return nil }
    return result
  }

  /// The type behind typedefs and qualifiers.
  private func strip(_ die: Dwarf_Die?) -> Dwarf_Die? {
    var current = die
    for _ in 0..<32 {
      guard var d = current else { return nil }
      switch tagOf(&d) {
      case DW_TAG_typedef, DW_TAG_const_type, DW_TAG_volatile_type, DW_TAG_restrict_type,
        DW_TAG_atomic_type:
        current = typeOf(&d)
      default:
        return d
      }
    }
    return nil
  }

  private func unsigned(_ die: inout Dwarf_Die, _ name: Int) -> UInt64? {
    var attribute = Dwarf_Attribute()
    guard dwarf_attr_integrate(&die, UInt32(name), &attribute) != nil else { return nil }
    var value: Dwarf_Word = 0
    guard dwarf_formudata(&attribute, &value) == 0 else { return nil }
    return value
  }

  private func signed(_ die: inout Dwarf_Die, _ name: Int) -> Int64? {
    var attribute = Dwarf_Attribute()
    guard dwarf_attr_integrate(&die, UInt32(name), &attribute) != nil else { return nil }
    var value: Dwarf_Sword = 0
    guard dwarf_formsdata(&attribute, &value) == 0 else { return nil }
    return Int64(value)
  }
}

extension Int32 {
  fileprivate var asBool: Bool { self != 0 }
}

/// The DIE's tag, as the `Int` that dwarf.h's DW_TAG_* constants import as.
private func tagOf(_ die: inout Dwarf_Die) -> Int { Int(dwarf_tag(&die)) }
