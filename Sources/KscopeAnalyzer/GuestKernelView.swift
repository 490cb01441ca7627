import KscopeCore
import KscopeLayout
import KscopeSnapshot

/// The kernel-location phase: where the guest kernel is (vmcoreinfo, KASLR slide, phys_base,
/// page tables) and what the later phases read it with: its address space, the struct page
/// layout and the rules that classify one struct page.
public struct GuestKernelView: Sendable {
  public let memory: any PhysicalMemory
  public let layout: KernelLayout
  public let location: KernelLocation
  public let space: KernelAddressSpace
  public let pages: PageStructLayout
  public let classifier: PageClassifier

  static let pageSize: UInt64 = 4096

  /// Finds the kernel in `memory` (`KernelLocator`; `hintedNote` is the agent's word for where
  /// vmcoreinfo is, checked like any other candidate).
  public static func locate(
    memory: any PhysicalMemory, layout: KernelLayout, hintedNote: UInt64? = nil
  ) throws(AnalyzerError) -> GuestKernelView {
    let location = try KernelLocator.locate(in: memory, layout: layout, hintedNote: hintedNote)
    return try GuestKernelView(memory: memory, layout: layout, location: location)
  }

  /// A view of a kernel already located (tests give crafted locations).
  public init(memory: any PhysicalMemory, layout: KernelLayout, location: KernelLocation) throws(AnalyzerError) {
    self.memory = memory
    self.layout = layout
    self.location = location
    space = KernelAddressSpace(memory: memory, location: location)
    do { pages = try PageStructLayout(layout: layout) } catch { throw .layout(error.description) }
    let space = space
    let pageSize = GuestKernelView.pageSize
    // The kernel image, as physical frames.
    func imageFrames(_ from: String, _ to: String, _ color: Color) -> KernelImageRange? {
      guard let a = layout.symbol(from)?.rawValue, let b = layout.symbol(to)?.rawValue, b > a,
        let pa = space.physical(space.running(a))
      else { return nil }
      let first = pa / pageSize
      return KernelImageRange(frames: first..<(first + (b - a + pageSize - 1) / pageSize), color: color)
    }
    let image = [
      imageFrames("_text", "_etext", .kernelCode), imageFrames("__start_rodata", "__end_rodata", .kernelData),
      imageFrames("_sdata", "_edata", .kernelData), imageFrames("__bss_start", "__bss_stop", .kernelData),
    ].compactMap { $0 }
    let zeroFrame = layout.symbol("empty_zero_page").flatMap { space.physical(space.running($0.rawValue)) }
      .map { $0 / pageSize }
    classifier = PageClassifier(layout: pages, kernelImage: image, zeroPageFrame: zeroFrame)
  }

  /// Frames 0..<frameCount: up to the end of RAM.
  public var frameCount: UInt64 { memory.end / GuestKernelView.pageSize }
}

/// The map under construction: one entry per frame (all `reserved` until a phase says
/// otherwise), and what looked wrong in guest data, counted by name.
public struct FrameTable: Sendable {
  public var entries: [UInt16]
  public var anomalies: [String: Int] = [:]

  public init(frameCount: Int) {
    entries = [UInt16](repeating: FrameEntry(.reserved).rawValue, count: frameCount)
  }

  public mutating func anomaly(_ what: String, _ n: Int = 1) { anomalies[what, default: 0] += n }

  public func entry(_ frame: UInt64) -> FrameEntry { FrameEntry(rawValue: entries[Int(frame)]) }

  @inline(__always)
  public mutating func set(_ frame: UInt64, _ color: Color, _ flags: PageFlags = []) {
    entries[Int(frame)] = FrameEntry(color, flags).rawValue
  }
}
