/// A stretch of guest RAM and where its bytes are in the RAM file: the one region type of the
/// snapshot manifest, the analyzer, the VM layer and the clone engine. QEMU's q35 machine puts
/// RAM below the PCI hole at guest physical 0 and the rest at 4 GiB; the manifest records the
/// split, and a small guest is one region at 0.
public struct GuestRAMRegion: Codable, Hashable, Sendable {
  public var guestPhysicalStart: UInt64
  public var size: UInt64
  public var fileOffset: UInt64

  public init(guestPhysicalStart: UInt64, size: UInt64, fileOffset: UInt64) {
    self.guestPhysicalStart = guestPhysicalStart
    self.size = size
    self.fileOffset = fileOffset
  }

  enum CodingKeys: String, CodingKey {
    case guestPhysicalStart = "guest_physical_start"
    case size
    case fileOffset = "file_offset"
  }

  /// One past the region's last guest-physical byte (wrapping is refused by the manifest's
  /// checks and by `RAMImage`, so `end` is exact for every region a reader holds).
  public var end: UInt64 { guestPhysicalStart &+ size }

  /// The regions QEMU's q35 machine (7.2, `pc_q35_init`) gives a RAM file of `ramSize` bytes:
  /// RAM below 4 GiB up to `lowmem`, the rest above 4 GiB. lowmem is 0xb0000000 (2.75 GiB) for
  /// guests smaller than that, and 2 GiB once RAM is at least 0xb0000000, so the PCI hole starts
  /// at a round boundary. The file holds the low part first, then the high part. (kscope never
  /// sets `max-ram-below-4g`, and its guests are far below the 1 TiB where AMD hosts relocate
  /// high RAM.)
  public static func q35Layout(ramSize: UInt64) -> [GuestRAMRegion] {
    let lowmem: UInt64 = ramSize >= 0xb000_0000 ? 0x8000_0000 : 0xb000_0000
    if ramSize < lowmem {
      return [GuestRAMRegion(guestPhysicalStart: 0, size: ramSize, fileOffset: 0)]
    }
    return [
      GuestRAMRegion(guestPhysicalStart: 0, size: lowmem, fileOffset: 0),
      GuestRAMRegion(guestPhysicalStart: 1 << 32, size: ramSize - lowmem, fileOffset: lowmem),
    ]
  }
}
