// Strong address types shared by every module: a kernel virtual address, a guest physical
// address and a page frame number are all 64-bit integers, and mixing them up is the classic
// bug of memory analyzers. No bare UInt64 addresses cross a module boundary.

/// A virtual address in the guest kernel's address space (e.g. `init_task` from `.symtab`,
/// before any KASLR slide is applied).
public struct KernelVirtualAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
  public var rawValue: UInt64
  public init(_ rawValue: UInt64) { self.rawValue = rawValue }
  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
  public var description: String { hex(rawValue) }

  /// The address `bytes` further on, wrapping like the hardware does (a KASLR slide may be
  /// applied as a two's-complement difference).
  public func advanced(by bytes: UInt64) -> Self { Self(rawValue &+ bytes) }
}

/// An address in the guest's physical memory (what the QEMU RAM file is indexed by, modulo
/// the PCI hole).
public struct GuestPhysicalAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
  public var rawValue: UInt64
  public init(_ rawValue: UInt64) { self.rawValue = rawValue }
  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
  public var description: String { hex(rawValue) }

  /// The frame that holds this address, for a page size of `1 << pageShift` bytes.
  public func frame(pageShift: UInt64 = 12) -> PageFrameNumber {
    PageFrameNumber(rawValue >> pageShift)
  }
}

/// The index of a physical page frame (physical address >> page shift).
public struct PageFrameNumber: Hashable, Comparable, Sendable, CustomStringConvertible {
  public var rawValue: UInt64
  public init(_ rawValue: UInt64) { self.rawValue = rawValue }
  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
  public var description: String { hex(rawValue) }

  /// The first physical address of the frame, or nil when it does not fit in 64 bits.
  public func address(pageShift: UInt64 = 12) -> GuestPhysicalAddress? {
    guard pageShift < 64, rawValue <= (UInt64.max >> pageShift) else { return nil }
    return GuestPhysicalAddress(rawValue << pageShift)
  }
}

/// "0x" followed by lowercase hex digits, without padding.
@inline(__always)
private func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
