import KscopeSnapshot
import Testing

@testable import KscopeAnalyzer

@Test func parsesVmcoreinfoText() {
  let text = """
    OSRELEASE=6.12.117+deb12-cloud-amd64
    BUILD-ID=7f76f39faf07f34cfa9fadd801e131bfa8cb6dc3
    PAGESIZE=4096
    SYMBOL(_stext)=ffffffffb1000000
    SYMBOL(vmemmap)=ffdd289d00000000
    NUMBER(SECTION_SIZE_BITS)=27
    NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456
    NUMBER(phys_base)=-671088640
    NUMBER(pgtable_l5_enabled)=1
    KERNELOFFSET=30000000
    garbage without equals
    """
  let info = VMCoreInfo(text: Array(text.utf8)[...])
  #expect(info?.release == "6.12.117+deb12-cloud-amd64")
  #expect(info?.buildID == "7f76f39faf07f34cfa9fadd801e131bfa8cb6dc3")
  #expect(info?.symbol("_stext") == 0xffff_ffff_b100_0000)
  #expect(info?.number("SECTION_SIZE_BITS") == 27)
  #expect(info?.number("PAGE_BUDDY_MAPCOUNT_VALUE") == UInt64(bitPattern: -268_435_456))
  #expect(info?.physBase == UInt64(bitPattern: -671_088_640))
  #expect(info?.kernelOffset == 0x3000_0000)
  #expect(info?.fiveLevelPaging == true)
  #expect(VMCoreInfo(text: Array("no release here\n".utf8)[...]) == nil)
  #expect(VMCoreInfo(text: [UInt8](repeating: 0xFF, count: 100)[...]) == nil)
}

@Test func locatingFailsClearlyWithoutAKernel() throws {
  let layout = try recordedLayout("6.1")
  let empty = ByteMemory(bytes: [UInt8](repeating: 0, count: 8 << 20))
  #expect(throws: AnalyzerError.noVMCoreInfo) { try KernelLocator.locate(in: empty, layout: layout) }
  // A note from another build of the kernel is refused, naming both builds.
  var m = ImageBuilder(size: 8 << 20)
  m.putVMCoreInfoNote(0x100000, "OSRELEASE=6.1.0-56-cloud-amd64\nBUILD-ID=00112233\nKERNELOFFSET=0\n")
  #expect(throws: AnalyzerError.kernelMismatch(image: "00112233", layout: layout.buildID ?? "")) {
    try KernelLocator.locate(in: m.memory, layout: layout)
  }
  // A note that names no build at all cannot pass the build check either.
  var bare = ImageBuilder(size: 8 << 20)
  bare.putVMCoreInfoNote(0x100000, "OSRELEASE=6.1.0-56-cloud-amd64\nKERNELOFFSET=0\n")
  #expect(layout.buildID != nil)
  #expect(throws: AnalyzerError.kernelMismatch(image: KernelLocator.noBuildID, layout: layout.buildID ?? "")) {
    try KernelLocator.locate(in: bare.memory, layout: layout)
  }
}
