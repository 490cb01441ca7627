import KscopeCore

/// Guest physical memory, read-only. Every read is bounds-checked against the RAM regions: an
/// address outside RAM (a hostile pointer, a hole) is `nil`, never a crash. Addresses are
/// `GuestPhysicalAddress`es (no bare UInt64 address crosses a module boundary); a module may
/// keep raw values inside itself (the analyzer's walkers do, see its PhysicalMemory+Raw).
public protocol PhysicalMemory: Sendable {
  var regions: [GuestRAMRegion] { get }
  /// Calls `body` with the bytes at `address..<address+count` when they lie inside one region.
  func withBytes<T>(
    at address: GuestPhysicalAddress, count: Int, _ body: (UnsafeRawBufferPointer) -> T
  ) -> T?
  /// The first address at or after `from` where `needle` occurs (within one region).
  func find(_ needle: [UInt8], from: GuestPhysicalAddress) -> GuestPhysicalAddress?
  /// False when `address..<address+count` is known to read as zeros without being stored (a
  /// hole of a sparse RAM file): a probe there can be skipped without touching it.
  func mayHoldData(at address: GuestPhysicalAddress, count: Int) -> Bool
}

extension PhysicalMemory {
  public func mayHoldData(at address: GuestPhysicalAddress, count: Int) -> Bool { true }
  @inline(__always)
  public func u64(at address: GuestPhysicalAddress) -> UInt64? {
    withBytes(at: address, count: 8) { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
  }
  @inline(__always)
  public func u32(at address: GuestPhysicalAddress) -> UInt32? {
    withBytes(at: address, count: 4) { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
  }
  public func bytes(at address: GuestPhysicalAddress, count: Int) -> [UInt8]? {
    withBytes(at: address, count: count) { Array($0) }
  }
  /// The size of the physical address space the RAM spans, in bytes from address 0 (one past
  /// the highest RAM byte): the map covers frames 0..<end/pageSize.
  public var end: UInt64 { regions.map(\.end).max() ?? 0 }

  public func contains(_ address: GuestPhysicalAddress) -> Bool {
    regions.contains { address.rawValue >= $0.guestPhysicalStart && address.rawValue < $0.end }
  }

  /// The region holding `address..<address+count`, for readers that need the file offset.
  public func region(containing address: GuestPhysicalAddress, count: Int) -> GuestRAMRegion? {
    let a = address.rawValue
    for r in regions where a >= r.guestPhysicalStart && a < r.end {
      return UInt64(count) <= r.end - a ? r : nil
    }
    return nil
  }
}

/// Guest memory held in a byte array: small crafted images for tests.
public struct ByteMemory: PhysicalMemory {
  public let bytes: [UInt8]
  public let regions: [GuestRAMRegion]

  public init(bytes: [UInt8], regions: [GuestRAMRegion]? = nil) {
    self.bytes = bytes
    self.regions = regions ?? [GuestRAMRegion(guestPhysicalStart: 0, size: UInt64(bytes.count), fileOffset: 0)]
  }

  public func withBytes<T>(
    at address: GuestPhysicalAddress, count: Int, _ body: (UnsafeRawBufferPointer) -> T
  ) -> T? {
    guard count >= 0, let r = region(containing: address, count: count) else { return nil }
    let offset = r.fileOffset + (address.rawValue - r.guestPhysicalStart)
    guard offset <= UInt64(bytes.count), UInt64(count) <= UInt64(bytes.count) - offset else { return nil }
    return bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<(Int(offset) + count)])) }
  }

  public func find(_ needle: [UInt8], from address: GuestPhysicalAddress) -> GuestPhysicalAddress? {
    let from = address.rawValue
    guard !needle.isEmpty else { return nil }
    for r in regions.sorted(by: { $0.guestPhysicalStart < $1.guestPhysicalStart }) where r.end > from {
      let lo = Int(r.fileOffset + (max(from, r.guestPhysicalStart) - r.guestPhysicalStart))
      let hi = Int(r.fileOffset + r.size) - needle.count
      guard lo <= hi, hi < bytes.count else { continue }
      var i = lo
      while i <= hi {
        if bytes[i] == needle[0] && Array(bytes[i..<(i + needle.count)]) == needle {
          return GuestPhysicalAddress(r.guestPhysicalStart + UInt64(i) - r.fileOffset)
        }
        i += 1
      }
    }
    return nil
  }
}
