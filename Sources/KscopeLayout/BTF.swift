// BTF, the kernel's compact type format (`.BTF` in vmlinux, /sys/kernel/btf/vmlinux), read
// from bytes: no syscalls. Layout of the blob (include/uapi/linux/btf.h):
//
//   header: u16 magic 0xeB9F, u8 version 1, u8 flags, u32 hdr_len, u32 type_off, u32 type_len,
//           u32 str_off, u32 str_len (offsets count from the end of the header)
//   types:  one record per type id from 1 (id 0 is void): u32 name_off, u32 info
//           (vlen bits 0-15, kind bits 24-28, kind_flag bit 31), u32 size or type, then a
//           kind-specific tail (members, enumerators, array, parameters, ...)
//   strings: NUL-terminated, offset 0 is the empty name
//
// The blob is untrusted (it may come from guest memory): the header and every record's extent
// are checked when the reader is made; type ids and string offsets are checked on use; every
// walk along type references is bounded, so a loop is an error and never a hang.

/// A damaged or unusable BTF blob, as one line.
public struct BTFError: Error, Equatable, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

public enum BTFKind: UInt8, Sendable, CaseIterable {
  case void = 0, int, pointer, array, structure, union, enumeration, forward, typedef, volatile,
    const, restrict, function, functionProto, variable, dataSection, float, declTag, typeTag,
    enum64
}

/// One member of a BTF struct or union, decoded.
public struct BTFMember: Sendable, Equatable {
  public var nameOffset: UInt32
  public var type: UInt32
  /// Offset from the start of the struct, in bits.
  public var bitOffset: UInt32
  /// The bitfield's width in bits (kind_flag encoding); 0 when not a bitfield.
  public var bitfieldSize: UInt32
}

public struct BTF: Sendable {
  public static let magic: UInt16 = 0xEB9F
  /// Larger blobs are refused (the 6.12 kernel's is 4.5 MiB).
  public static let maxBytes = 256 << 20

  public let bytes: [UInt8]
  let typesStart: Int
  let typesEnd: Int
  let stringsStart: Int
  let stringsEnd: Int
  /// Byte offset of each type's record; index i is type id i + 1.
  let recordOffsets: [UInt32]

  /// Number of types (ids 1...typeCount).
  public var typeCount: Int { recordOffsets.count }
  public var typeBytes: Int { typesEnd - typesStart }
  public var stringBytes: Int { stringsEnd - stringsStart }

  /// The BTF header's total length (header + types + strings) when `bytes` starts with a
  /// plausible header: what a scan of memory needs to know how much to read.
  public static func declaredLength(_ header: UnsafeRawBufferPointer) -> Int? {
    guard header.count >= 24, u16(header, 0) == magic, header[2] == 1 else { return nil }
    let hdrLen = Int(u32(header, 4))
    let typeOff = Int(u32(header, 8)), typeLen = Int(u32(header, 12))
    let strOff = Int(u32(header, 16)), strLen = Int(u32(header, 20))
    guard hdrLen >= 24, hdrLen <= 256 else { return nil }
    let end = max(typeOff + typeLen, strOff + strLen)
    guard hdrLen + end <= maxBytes else { return nil }
    return hdrLen + end
  }

  public init(_ bytes: [UInt8]) throws(BTFError) {
    self.bytes = bytes
    let parsed: Result<(Int, Int, Int, Int, [UInt32]), BTFError> = bytes.withUnsafeBytes { raw in
      do throws(BTFError) { return .success(try BTF.index(raw)) } catch { return .failure(error) }
    }
    (typesStart, typesEnd, stringsStart, stringsEnd, recordOffsets) = try parsed.get()
  }

  private static func index(_ raw: UnsafeRawBufferPointer) throws(BTFError) -> (
    Int, Int, Int, Int, [UInt32]
  ) {
    guard raw.count >= 24 else { throw BTFError("BTF: \(raw.count) bytes, shorter than a header") }
    guard raw.count <= maxBytes else { throw BTFError("BTF: \(raw.count) bytes, more than \(maxBytes)") }
    let magic = u16(raw, 0)
    guard magic == BTF.magic else {
      throw BTFError("BTF: bad magic 0x\(String(magic, radix: 16)) (want 0xeb9f; big-endian BTF is not read)")
    }
    guard raw[2] == 1 else { throw BTFError("BTF: version \(raw[2]), only version 1 is known") }
    let hdrLen = Int(u32(raw, 4))
    guard hdrLen >= 24, hdrLen <= raw.count else {
      throw BTFError("BTF: header length \(hdrLen) is outside 24...\(raw.count)")
    }
    // A longer header (a newer format) is accepted only if its extra bytes are zero, as the
    // kernel itself requires.
    for i in 24..<hdrLen where raw[i] != 0 {
      throw BTFError("BTF: header has unknown non-zero fields (length \(hdrLen))")
    }
    let typeOff = Int(u32(raw, 8)), typeLen = Int(u32(raw, 12))
    let strOff = Int(u32(raw, 16)), strLen = Int(u32(raw, 20))
    let body = raw.count - hdrLen
    guard typeOff <= body, typeLen <= body - typeOff else {
      throw BTFError("BTF: type section \(typeOff)+\(typeLen) runs past the \(body) bytes after the header")
    }
    guard strOff <= body, strLen <= body - strOff else {
      throw BTFError("BTF: string section \(strOff)+\(strLen) runs past the \(body) bytes after the header")
    }
    guard typeOff % 4 == 0, typeLen % 4 == 0 else {
      throw BTFError("BTF: type section \(typeOff)+\(typeLen) is not 4-byte aligned")
    }
    guard typeOff + typeLen <= strOff || strOff + strLen <= typeOff else {
      throw BTFError("BTF: type and string sections overlap")
    }
    guard strLen > 0, raw[hdrLen + strOff] == 0, raw[hdrLen + strOff + strLen - 1] == 0 else {
      throw BTFError("BTF: string section must start and end with a NUL")
    }
    let start = hdrLen + typeOff, end = start + typeLen
    var offsets: [UInt32] = []
    offsets.reserveCapacity(typeLen / 20)
    var at = start
    while at < end {
      guard end - at >= 12 else { throw BTFError("BTF: type \(offsets.count + 1) is cut off by the end of the type section") }
      let info = u32(raw, at + 4)
      let vlen = Int(info & 0xFFFF)
      let kindRaw = UInt8((info >> 24) & 0x1F)
      guard let kind = BTFKind(rawValue: kindRaw) else {
        throw BTFError("BTF: type \(offsets.count + 1) has unknown kind \(kindRaw)")
      }
      let tail = BTF.tailSize(kind, vlen: vlen)
      guard tail <= end - at - 12 else {
        throw BTFError("BTF: type \(offsets.count + 1) (\(kind), \(vlen) entries) runs past the end of the type section")
      }
      guard offsets.count < Int(UInt32.max >> 1) else { throw BTFError("BTF: too many types") }
      offsets.append(UInt32(at))
      at += 12 + tail
    }
    return (start, end, hdrLen + strOff, hdrLen + strOff + strLen, offsets)
  }

  /// Bytes following the 12-byte common record.
  static func tailSize(_ kind: BTFKind, vlen: Int) -> Int {
    switch kind {
    case .int, .variable, .declTag: return 4
    case .array: return 12
    case .structure, .union, .enum64, .dataSection: return 12 * vlen
    case .enumeration, .functionProto: return 8 * vlen
    case .void, .pointer, .forward, .typedef, .volatile, .const, .restrict, .function, .float,
      .typeTag:
      return 0
    }
  }

  // MARK: Records

  @inline(__always)
  static func u16(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt16 {
    UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))
  }
  @inline(__always)
  static func u32(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
    UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self))
  }
  /// A u32 inside the (already bounds-checked) type section.
  @inline(__always)
  func word(_ at: Int) -> UInt32 { bytes.withUnsafeBytes { BTF.u32($0, at) } }

  /// The record offset of a type id; id 0 (void) has none.
  func record(_ id: UInt32) throws(BTFError) -> Int {
    guard id >= 1, Int(id) <= recordOffsets.count else {
      throw BTFError("BTF: type id \(id) is out of range (1...\(recordOffsets.count))")
    }
    return Int(recordOffsets[Int(id) - 1])
  }

  public func kind(_ id: UInt32) throws(BTFError) -> BTFKind {
    if id == 0 { return .void }
    return BTFKind(rawValue: UInt8((word(try record(id) + 4) >> 24) & 0x1F))!
  }
  public func vlen(_ id: UInt32) throws(BTFError) -> Int {
    id == 0 ? 0 : Int(word(try record(id) + 4) & 0xFFFF)
  }
  public func kindFlag(_ id: UInt32) throws(BTFError) -> Bool {
    id == 0 ? false : word(try record(id) + 4) >> 31 == 1
  }
  public func nameOffset(_ id: UInt32) throws(BTFError) -> UInt32 {
    id == 0 ? 0 : word(try record(id))
  }
  /// `size` for INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC; the referenced type for the
  /// others.
  public func sizeOrType(_ id: UInt32) throws(BTFError) -> UInt32 {
    id == 0 ? 0 : word(try record(id) + 8)
  }

  public func name(_ id: UInt32) throws(BTFError) -> String { try string(at: try nameOffset(id)) }

  /// The NUL-terminated string at `offset` in the string section.
  public func string(at offset: UInt32) throws(BTFError) -> String {
    let start = stringsStart + Int(offset)
    guard Int(offset) < stringsEnd - stringsStart else {
      throw BTFError("BTF: string offset \(offset) is outside the \(stringsEnd - stringsStart)-byte string section")
    }
    // The section ends with a NUL (checked), so this search stops inside it.
    var end = start
    while bytes[end] != 0 { end += 1 }
    return String(decoding: bytes[start..<end], as: UTF8.self)
  }

  /// Length of the string at `offset` when it is valid (for matching without a String).
  func stringLength(at offset: UInt32) -> Int? {
    guard Int(offset) < stringsEnd - stringsStart else { return nil }
    let start = stringsStart + Int(offset)
    return bytes.withUnsafeBytes { raw -> Int in
      var end = start
      while raw[end] != 0 { end += 1 }
      return end - start
    }
  }

  /// INT: (encoding, bit offset, bit count). Encoding bits: 1 signed, 2 char, 4 bool.
  public func intEncoding(_ id: UInt32) throws(BTFError) -> (encoding: UInt8, offset: Int, bits: Int) {
    guard try kind(id) == .int else { throw BTFError("BTF: type \(id) is not an INT") }
    let v = word(try record(id) + 12)
    return (UInt8((v >> 24) & 0x0F), Int((v >> 16) & 0xFF), Int(v & 0xFF))
  }

  /// ARRAY: element type, index type, element count.
  public func array(_ id: UInt32) throws(BTFError) -> (element: UInt32, index: UInt32, count: UInt32) {
    guard try kind(id) == .array else { throw BTFError("BTF: type \(id) is not an ARRAY") }
    let r = try record(id)
    return (word(r + 12), word(r + 16), word(r + 20))
  }

  /// STRUCT/UNION members in declaration order.
  public func members(_ id: UInt32) throws(BTFError) -> [BTFMember] {
    let k = try kind(id)
    guard k == .structure || k == .union else { throw BTFError("BTF: type \(id) is not a struct or union") }
    let r = try record(id), n = try vlen(id), flag = try kindFlag(id)
    var out: [BTFMember] = []
    out.reserveCapacity(n)
    for i in 0..<n {
      let at = r + 12 + 12 * i
      let raw = word(at + 8)
      out.append(
        BTFMember(
          nameOffset: word(at), type: word(at + 4), bitOffset: flag ? raw & 0xFF_FFFF : raw,
          bitfieldSize: flag ? raw >> 24 : 0))
    }
    return out
  }

  /// ENUM/ENUM64 enumerators as (name offset, value); values are sign-extended when the
  /// enum is signed (kind_flag), zero-extended otherwise.
  public func enumerators(_ id: UInt32) throws(BTFError) -> [(nameOffset: UInt32, value: Int64)] {
    let k = try kind(id)
    let r = try record(id), n = try vlen(id), signed = try kindFlag(id)
    var out: [(UInt32, Int64)] = []
    out.reserveCapacity(n)
    switch k {
    case .enumeration:
      for i in 0..<n {
        let v = word(r + 12 + 8 * i + 4)
        out.append((word(r + 12 + 8 * i), signed ? Int64(Int32(bitPattern: v)) : Int64(v)))
      }
    case .enum64:
      for i in 0..<n {
        let at = r + 12 + 12 * i
        let v = UInt64(word(at + 4)) | UInt64(word(at + 8)) << 32
        out.append((word(at), Int64(bitPattern: v)))
      }
    default:
      throw BTFError("BTF: type \(id) is not an enum")
    }
    return out
  }

  /// Every type id of `kinds` whose name is one of `names`, in id order (names matched as
  /// bytes, without making a String per type).
  public func ids(named names: Set<String>, kinds: Set<BTFKind>) -> [String: [UInt32]] {
    var byLength: [Int: [(String, [UInt8])]] = [:]
    for name in names { byLength[name.utf8.count, default: []].append((name, Array(name.utf8))) }
    var found: [String: [UInt32]] = [:]
    // A bit per kind: no hashing per type.
    let mask = kinds.reduce(UInt32(0)) { $0 | 1 << UInt32($1.rawValue) }
    bytes.withUnsafeBytes { raw in
      for (i, offset) in recordOffsets.enumerated() {
        let at = Int(offset)
        guard mask & 1 << ((BTF.u32(raw, at + 4) >> 24) & 0x1F) != 0 else { continue }
        let nameOff = BTF.u32(raw, at)
        guard nameOff != 0, let length = stringLength(at: nameOff),
          let candidates = byLength[length]
        else { continue }
        let start = stringsStart + Int(nameOff)
        for (name, want) in candidates {
          var same = true
          for j in 0..<length where raw[start + j] != want[j] {
            same = false
            break
          }
          if same { found[name, default: []].append(UInt32(i + 1)) }
        }
      }
    }
    return found
  }
}
