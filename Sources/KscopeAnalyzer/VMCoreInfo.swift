import KscopeCore

/// The kernel's vmcoreinfo: "KEY=VALUE" lines the running kernel writes for crash dump tools
/// (release, build id, KASLR offset, phys_base, key symbols, struct sizes and offsets).
/// Parsed from guest memory, so every value is untrusted: lines are bounded, numbers checked.
public struct VMCoreInfo: Sendable, Equatable {
  public private(set) var values: [String: String] = [:]

  public static let maxBytes = 1 << 16

  /// Parses the text; nil when it does not look like vmcoreinfo (no OSRELEASE line).
  public init?(text bytes: ArraySlice<UInt8>) {
    var values: [String: String] = [:]
    for line in bytes.prefix(VMCoreInfo.maxBytes).split(separator: UInt8(ascii: "\n")) {
      guard line.count < 512, let eq = line.firstIndex(of: UInt8(ascii: "=")),
        let key = decodeUTF8(line[line.startIndex..<eq]), let value = decodeUTF8(line[(eq + 1)...])
      else { continue }
      values[key] = value
    }
    guard values["OSRELEASE"] != nil else { return nil }
    self.values = values
  }

  public var release: String? { values["OSRELEASE"] }
  public var buildID: String? { values["BUILD-ID"] }
  /// The KASLR slide of the kernel image (x86-64 writes it as KERNELOFFSET, hex).
  public var kernelOffset: UInt64? { values["KERNELOFFSET"].flatMap { UInt64($0, radix: 16) } }
  public var physBase: UInt64? { number("phys_base") }
  public var fiveLevelPaging: Bool? { number("pgtable_l5_enabled").map { $0 != 0 } }

  /// SYMBOL(name)=hex: the address of a kernel symbol in the running kernel.
  public func symbol(_ name: String) -> UInt64? { values["SYMBOL(\(name))"].flatMap { UInt64($0, radix: 16) } }
  /// NUMBER(name)=decimal or 0x-hex (may be negative, kept as two's complement).
  public func number(_ name: String) -> UInt64? {
    guard let v = values["NUMBER(\(name))"] else { return nil }
    if v.hasPrefix("0x") { return UInt64(v.dropFirst(2), radix: 16) }
    if let i = Int64(v) { return UInt64(bitPattern: i) }
    return UInt64(v)
  }
  public func size(_ type: String) -> UInt64? { values["SIZE(\(type))"].flatMap { UInt64($0) } }
  public func offset(_ path: String) -> UInt64? { values["OFFSET(\(path))"].flatMap { UInt64($0) } }
}
