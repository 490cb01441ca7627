import KscopeCore

// The kernel layout: what the host must know about a guest kernel before reading its memory.
// It mirrors Volatility 3's ISF (base types, user types, enums, symbols) so that it can be
// written and read as ISF JSON, and adds the typed lookups the memory walkers use.
//
// Members of anonymous structs and unions are *flattened* into the enclosing type with their
// absolute offsets (`page.mapping` is at 24 although DWARF nests it two anonymous levels
// deep). C forbids duplicate names across anonymous members, so flattening loses nothing a
// walker needs, and it is exactly how Volatility resolves ISF "anonymous" fields.

/// How a member's or symbol's type is described (an ISF type descriptor).
public indirect enum TypeDescriptor: Hashable, Sendable {
  /// A base type by name (`unsigned int`, `void`, ...), described in `baseTypes`.
  case base(String)
  case pointer(TypeDescriptor)
  /// `count` elements; 0 for a flexible array member.
  case array(count: Int, of: TypeDescriptor)
  case structure(String)
  case union(String)
  case enumeration(String)
  case function
  /// `length` bits starting `position` bits above the least significant bit of a storage
  /// unit of type `storage` read at the member's byte offset (little-endian, as ISF does).
  case bitfield(position: Int, length: Int, storage: TypeDescriptor)
}

/// The kind of a base type, as ISF names it.
public enum BaseKind: String, Sendable, CaseIterable {
  case void, int, float, char, bool
}

public struct BaseType: Hashable, Sendable {
  public var size: Int
  public var signed: Bool
  public var kind: BaseKind
  public init(size: Int, signed: Bool, kind: BaseKind) {
    self.size = size
    self.signed = signed
    self.kind = kind
  }
}

/// One member of a struct or union, with its offset from the start of the outermost type.
public struct Member: Hashable, Sendable {
  public var name: String
  /// Byte offset; for a bitfield, the offset of its storage unit.
  public var offset: Int
  public var type: TypeDescriptor
  public init(name: String, offset: Int, type: TypeDescriptor) {
    self.name = name
    self.offset = offset
    self.type = type
  }
  /// The order members are kept in: by offset, then bit position, then name.
  public static func layoutOrder(_ a: Member, _ b: Member) -> Bool {
    if a.offset != b.offset { return a.offset < b.offset }
    let pa = a.bitfield?.position ?? -1
    let pb = b.bitfield?.position ?? -1
    if pa != pb { return pa < pb }
    return a.name < b.name
  }

  /// Bit position and length when the member is a bitfield.
  public var bitfield: (position: Int, length: Int)? {
    if case .bitfield(let position, let length, _) = type { return (position, length) }
    return nil
  }
}

public enum UserTypeKind: String, Sendable {
  case structure = "struct"
  case union = "union"
}

/// A struct or union.
public struct UserType: Hashable, Sendable {
  public var kind: UserTypeKind
  public var size: Int
  /// Members by offset (then bit position, then name): ISF fields are an unordered JSON
  /// object, so declaration order cannot survive a file anyway.
  public var members: [Member]
  public init(kind: UserTypeKind, size: Int, members: [Member]) {
    self.kind = kind
    self.size = size
    self.members = members
  }
  public func member(named name: String) -> Member? { members.first { $0.name == name } }
}

public struct EnumType: Hashable, Sendable {
  public var size: Int
  /// The name of the base type with the enum's size and signedness.
  public var base: String
  public var constants: [String: Int64]
  public init(size: Int, base: String, constants: [String: Int64]) {
    self.size = size
    self.base = base
    self.constants = constants
  }
}

public struct Symbol: Hashable, Sendable {
  /// The link-time address from `.symtab` (the guest adds its KASLR slide).
  public var address: KernelVirtualAddress
  /// Bytes of the symbol's initial contents, when recorded (`linux_banner`, the build id).
  public var constantData: [UInt8]?
  public init(address: KernelVirtualAddress, constantData: [UInt8]? = nil) {
    self.address = address
    self.constantData = constantData
  }
}

/// Where a layout came from (ISF `metadata.linux.symbols`).
public struct LayoutSource: Hashable, Sendable {
  /// `dwarf`, `symtab` or `system-map`, as ISF spells it.
  public var kind: String
  public var name: String
  public init(kind: String, name: String) {
    self.kind = kind
    self.name = name
  }
}

/// Symbol names under which the layout keeps facts that ISF has no field for.
public enum LayoutSymbolName {
  /// The kernel's banner string ("Linux version 6.1.0-56-cloud-amd64 ..."), as Volatility
  /// records it; the release is its third word.
  public static let banner = "linux_banner"
  /// The GNU build id: its address is where the id's bytes sit in the loaded image (in the
  /// `.notes` section), its constant data the id itself. Not a kernel symbol: kscope's own.
  public static let buildID = "kscope_build_id"
}

public struct KernelLayout: Equatable, Sendable {
  public var producer: (name: String, version: String)
  public var sources: [LayoutSource]
  public var baseTypes: [String: BaseType]
  public var userTypes: [String: UserType]
  public var enums: [String: EnumType]
  public var symbols: [String: Symbol]

  public init(
    producer: (name: String, version: String) = (
      KernelLayout.producerName, KernelLayout.producerVersion
    ),
    sources: [LayoutSource] = [], baseTypes: [String: BaseType] = [:],
    userTypes: [String: UserType] = [:], enums: [String: EnumType] = [:],
    symbols: [String: Symbol] = [:]
  ) {
    self.producer = producer
    self.sources = sources
    self.baseTypes = baseTypes
    self.userTypes = userTypes
    self.enums = enums
    self.symbols = symbols
  }

  public static let producerName = "kscope"
  public static let producerVersion = "0.1.0"

  public static func == (a: KernelLayout, b: KernelLayout) -> Bool {
    a.producer == b.producer && a.sources == b.sources && a.baseTypes == b.baseTypes
      && a.userTypes == b.userTypes && a.enums == b.enums && a.symbols == b.symbols
  }
}

// MARK: Facts

extension KernelLayout {
  /// The banner string (`linux_banner`), without its trailing newline and NULs.
  public var banner: String? {
    guard var bytes = symbols[LayoutSymbolName.banner]?.constantData else { return nil }
    while let last = bytes.last, last == 0 || last == 0x0A { bytes.removeLast() }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// The kernel release (`uname -r`), the third word of the banner "Linux version X ...".
  public var release: String? {
    guard let banner else { return nil }
    let words = banner.split(separator: " ", omittingEmptySubsequences: true)
    guard words.count >= 3, words[0] == "Linux", words[1] == "version" else { return nil }
    return String(words[2])
  }

  /// The GNU build id in lowercase hex, when recorded.
  public var buildID: String? {
    guard let bytes = symbols[LayoutSymbolName.buildID]?.constantData else { return nil }
    return bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
  }
}

// MARK: Typed lookups for the walkers

extension KernelLayout {
  /// The link-time address of a symbol, or nil when the layout does not have it.
  public func symbol(_ name: String) -> KernelVirtualAddress? { symbols[name]?.address }

  /// Like `symbol(_:)`, but a missing symbol is an error naming it.
  public func requireSymbol(_ name: String) throws(LayoutError) -> KernelVirtualAddress {
    guard let address = symbols[name]?.address else { throw .missingSymbol(name) }
    return address
  }

  public func userType(_ name: String) throws(LayoutError) -> UserType {
    guard let type = userTypes[name] else { throw .missingType(name) }
    return type
  }

  /// `sizeof(struct name)` (or of an enum or base type of that name).
  public func size(of name: String) throws(LayoutError) -> Int {
    if let type = userTypes[name] { return type.size }
    if let type = enums[name] { return type.size }
    if let type = baseTypes[name] { return type.size }
    throw .missingType(name)
  }

  /// The first of `alternatives` that `type` has: kernels rename members (`_count` became
  /// `_refcount` in 4.6), so walkers name every spelling they accept, newest first.
  public func member(of type: String, _ alternatives: [String]) throws(LayoutError) -> Member {
    let userType = try userType(type)
    for name in alternatives {
      if let member = userType.member(named: name) { return member }
    }
    throw .missingMember(type: type, member: alternatives)
  }

  /// Byte offset of a member (first of `member` alternatives), or of a dotted path through
  /// named struct members (`"lru.next"`). A bitfield has no byte offset: use `bitfield(of:)`.
  public func offset(of type: String, member alternatives: [String]) throws(LayoutError) -> Int {
    var lastError: LayoutError = .missingMember(type: type, member: alternatives)
    for path in alternatives {
      do {
        return try offset(of: type, path: path)
      } catch {
        lastError = error
      }
    }
    if alternatives.count > 1, case .missingMember = lastError {
      throw .missingMember(type: type, member: alternatives)
    }
    throw lastError
  }

  public func offset(of type: String, member: String) throws(LayoutError) -> Int {
    try offset(of: type, member: [member])
  }

  private func offset(of type: String, path: String) throws(LayoutError) -> Int {
    var current = type
    var total = 0
    let parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    for (i, part) in parts.enumerated() {
      let found = try member(of: current, [part])
      if found.bitfield != nil { throw .bitfieldMember(type: current, member: part) }
      total += found.offset
      if i + 1 < parts.count {
        switch found.type {
        case .structure(let name), .union(let name): current = name
        default: throw .notAStruct(type: current, member: part)
        }
      }
    }
    return total
  }

  /// Storage offset, bit position and bit length of a bitfield member.
  public func bitfield(of type: String, member alternatives: [String]) throws(LayoutError) -> (
    offset: Int, position: Int, length: Int
  ) {
    let found = try member(of: type, alternatives)
    guard let bits = found.bitfield else { throw .notABitfield(type: type, member: found.name) }
    return (found.offset, bits.position, bits.length)
  }

  /// The value of an enum constant (`enumValue("pageflags", "PG_slab")`).
  public func enumValue(_ enumName: String, _ constant: String) throws(LayoutError) -> Int64 {
    try enumValue(enumName, anyOf: [constant])
  }

  /// The value of the first of `alternatives` that the enum defines.
  public func enumValue(_ enumName: String, anyOf alternatives: [String]) throws(LayoutError)
    -> Int64
  {
    guard let type = enums[enumName] else { throw .missingEnum(enumName) }
    for name in alternatives {
      if let value = type.constants[name] { return value }
    }
    throw .missingEnumConstant(enum: enumName, constant: alternatives)
  }
}

/// A lookup or format problem, each with the names that were missing or wrong.
public enum LayoutError: Error, Equatable, CustomStringConvertible {
  case missingType(String)
  case missingMember(type: String, member: [String])
  case missingSymbol(String)
  case missingEnum(String)
  case missingEnumConstant(enum: String, constant: [String])
  case bitfieldMember(type: String, member: String)
  case notABitfield(type: String, member: String)
  case notAStruct(type: String, member: String)
  /// The layout lacks things a request needs (each entry like "member page._refcount|_count").
  case incomplete(missing: [String])
  /// An ISF document that does not follow the format; `path` locates the bad value.
  case invalidISF(path: String, reason: String)
  /// Neither the layout nor a kscope rule gives the page_type encoding of this release.
  case noPageTypeRule(release: String?)

  public var description: String {
    switch self {
    case .missingType(let name): return "no type '\(name)' in the layout"
    case .missingMember(let type, let member):
      return "no member '\(member.joined(separator: "|"))' in '\(type)'"
    case .missingSymbol(let name): return "no symbol '\(name)' in the layout"
    case .missingEnum(let name): return "no enum '\(name)' in the layout"
    case .missingEnumConstant(let name, let constant):
      return "no constant '\(constant.joined(separator: "|"))' in enum '\(name)'"
    case .bitfieldMember(let type, let member):
      return "'\(type).\(member)' is a bitfield: it has no byte offset"
    case .notABitfield(let type, let member): return "'\(type).\(member)' is not a bitfield"
    case .notAStruct(let type, let member):
      return "'\(type).\(member)' is not a struct or union: cannot look inside it"
    case .incomplete(let missing): return "missing \(missing.joined(separator: ", "))"
    case .invalidISF(let path, let reason): return "invalid ISF at \(path): \(reason)"
    case .noPageTypeRule(let release):
      return
        "no page_type encoding for Linux \(release ?? "(unknown release)"): the debug info has no enum pagetype and kscope has no rule for this release"
    }
  }
}
