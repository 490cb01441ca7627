/// Little-endian encoding into a growing byte array (the writer side of every kscope format).
public struct ByteWriter: Sendable {
  public private(set) var bytes: [UInt8] = []

  public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

  public var count: Int { bytes.count }

  public mutating func u8(_ v: UInt8) { bytes.append(v) }
  public mutating func u16(_ v: UInt16) { put(UInt64(v), 2) }
  public mutating func u32(_ v: UInt32) { put(UInt64(v), 4) }
  public mutating func u64(_ v: UInt64) { put(v, 8) }
  public mutating func raw(_ b: [UInt8]) { bytes += b }
  public mutating func zeros(_ n: Int) { bytes += repeatElement(0, count: n) }
  public mutating func align(_ a: Int) { zeros((a - bytes.count % a) % a) }

  /// Overwrites 8 bytes at `offset` (for fields known only at the end, like sizes).
  public mutating func patchU64(_ v: UInt64, at offset: Int) {
    for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
  }

  private mutating func put(_ v: UInt64, _ n: Int) {
    for i in 0..<n { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
  }
}

/// Bounds-checked little-endian reads from a byte array. Every read names what it reads, so an
/// out-of-bounds read becomes an error the caller can turn into a one-line message.
public struct ByteReader: Sendable {
  public let bytes: [UInt8]
  public init(_ bytes: [UInt8]) { self.bytes = bytes }

  public struct OutOfBounds: Error, Sendable {
    public let offset: Int
    public let size: Int
  }

  @inline(__always)
  func check(_ offset: Int, _ size: Int) throws(OutOfBounds) {
    guard offset >= 0, size >= 0, offset <= bytes.count, size <= bytes.count - offset else {
      throw OutOfBounds(offset: offset, size: size)
    }
  }

  public func u8(at o: Int) throws(OutOfBounds) -> UInt8 {
    try check(o, 1)
    return bytes[o]
  }
  public func u16(at o: Int) throws(OutOfBounds) -> UInt16 {
    try check(o, 2)
    return UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8
  }
  public func u32(at o: Int) throws(OutOfBounds) -> UInt32 {
    try check(o, 4)
    var v: UInt32 = 0
    for i in 0..<4 { v |= UInt32(bytes[o + i]) << (8 * UInt32(i)) }
    return v
  }
  public func u64(at o: Int) throws(OutOfBounds) -> UInt64 {
    try check(o, 8)
    var v: UInt64 = 0
    for i in 0..<8 { v |= UInt64(bytes[o + i]) << (8 * UInt64(i)) }
    return v
  }
  public func slice(at o: Int, count n: Int) throws(OutOfBounds) -> ArraySlice<UInt8> {
    try check(o, n)
    return bytes[o..<(o + n)]
  }
}

/// Decodes UTF-8 strictly (no Foundation): nil for invalid sequences.
public func decodeUTF8(_ bytes: ArraySlice<UInt8>) -> String? {
  var out = ""
  var it = bytes.makeIterator()
  var decoder = UTF8()
  loop: while true {
    switch decoder.decode(&it) {
    case .scalarValue(let s): out.unicodeScalars.append(s)
    case .emptyInput: break loop
    case .error: return nil
    }
  }
  return out
}

/// Lower-case hex of a byte sequence.
public func hexString<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
  let digits = Array("0123456789abcdef")
  var s = ""
  for b in bytes {
    s.append(digits[Int(b >> 4)])
    s.append(digits[Int(b & 15)])
  }
  return s
}

/// Hex of a 64-bit value, zero-padded to 16 digits.
public func hex64(_ v: UInt64) -> String {
  let s = String(v, radix: 16)
  return String(repeating: "0", count: max(0, 16 - s.count)) + s
}

/// Copies `count` little-endian UInt16 values starting at `offset` (the caller has checked the
/// bounds). One bulk copy instead of 2 bytes at a time: color maps have millions of frames.
public func loadU16Array(_ bytes: [UInt8], offset: Int, count: Int) -> [UInt16] {
  precondition(offset >= 0 && count >= 0 && offset + 2 * count <= bytes.count)
  return [UInt16](unsafeUninitializedCapacity: count) { out, initialized in
    bytes.withUnsafeBytes { raw in
      for i in 0..<count {
        out[i] = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self))
      }
    }
    initialized = count
  }
}
