import Foundation
import Testing

@testable import KscopeVM

/// `info mtree -f` as QEMU 7.2 prints it for a 3 GiB q35 guest started by `kscope vm start`
/// (excerpt: the SMM view, then the "memory" view).
let flatView3G = """
  FlatView #0
   AS "cpu-smm-0", root: memory
   Root memory region: memory
    0000000000000000-00000000000bffff (prio 0, ram): ram
    0000000000100000-000000007fffffff (prio 0, ram): ram @0000000000100000
    00000000a0000000-00000000a0000fff (prio 0, ram): ram @0000000090000000
  FlatView #3
   AS "memory", root: system
   AS "cpu-memory-0", root: system
   Root memory region: system
    0000000000000000-00000000000bffff (prio 0, ram): ram
    00000000000c0000-00000000000e7fff (prio 0, rom): ram @00000000000c0000
    00000000000e8000-00000000000effff (prio 0, ram): ram @00000000000e8000
    00000000000f0000-00000000000fffff (prio 0, rom): ram @00000000000f0000
    0000000000100000-000000007fffffff (prio 0, ram): ram @0000000000100000
    00000000b0000000-00000000bfffffff (prio 0, i/o): pcie-mmcfg-mmio
    00000000fe400000-00000000fe7fffff (prio 1, ram): hints
    00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios
    0000000100000000-000000013fffffff (prio 0, ram): ram @0000000080000000
  FlatView #4
   AS "other", root: system
    0000000000000000-00000000000bffff (prio 0, ram): ram
  """

@Suite struct FlatViewTests {
  @Test func qemusMapOfA3GiBGuestIsTheQ35Split() {
    let layout = GuestMemoryRegion.parseFlatView(flatView3G)
    #expect(
      layout == [
        GuestMemoryRegion(guestPhysicalStart: 0, size: 2 << 30, fileOffset: 0),
        GuestMemoryRegion(guestPhysicalStart: 4 << 30, size: 1 << 30, fileOffset: 2 << 30),
      ])
    #expect(layout == GuestMemoryRegion.q35Layout(ramSize: 3 << 30))
    // HMP's replies end lines with CRLF.
    let crlf = flatView3G.replacingOccurrences(of: "\n", with: "\r\n")
    #expect(GuestMemoryRegion.parseFlatView(crlf) == layout)
  }

  @Test func otherBackendsAndGarbageAreIgnored() {
    #expect(
      GuestMemoryRegion.parseFlatView(flatView3G, backend: "hints") == [
        GuestMemoryRegion(guestPhysicalStart: 0xfe40_0000, size: 4 << 20, fileOffset: 0)
      ])
    #expect(GuestMemoryRegion.parseFlatView("").isEmpty)
    #expect(GuestMemoryRegion.parseFlatView("AS \"memory\"\nzz-yy (prio 0, ram): ram\n").isEmpty)
  }
}
