import KscopeCore
import KscopeSnapshot

// The walkers do arithmetic on raw physical addresses (page-table entries, struct page
// pointers) on every step; these module-internal forms take them as they are. Across the
// module boundary addresses stay typed (KscopeSnapshot's PhysicalMemory, KernelAddressSpace's
// public API).
extension PhysicalMemory {
  @inline(__always)
  func withBytes<T>(at address: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> T) -> T? {
    withBytes(at: GuestPhysicalAddress(address), count: count, body)
  }
  @inline(__always)
  func u64(at address: UInt64) -> UInt64? { u64(at: GuestPhysicalAddress(address)) }
  @inline(__always)
  func u32(at address: UInt64) -> UInt32? { u32(at: GuestPhysicalAddress(address)) }
  func bytes(at address: UInt64, count: Int) -> [UInt8]? {
    bytes(at: GuestPhysicalAddress(address), count: count)
  }
  func find(_ needle: [UInt8], from: UInt64) -> UInt64? {
    find(needle, from: GuestPhysicalAddress(from))?.rawValue
  }
  func contains(_ address: UInt64) -> Bool { contains(GuestPhysicalAddress(address)) }
  func mayHoldData(at address: UInt64, count: Int) -> Bool {
    mayHoldData(at: GuestPhysicalAddress(address), count: count)
  }
  func region(containing address: UInt64, count: Int) -> GuestRAMRegion? {
    region(containing: GuestPhysicalAddress(address), count: count)
  }
}
