import Foundation
import KscopeCore
import KscopeOS

/// `DIR/manifest.json` of a snapshot: what the analyzer and the clone engine read. File names are
/// relative to DIR, so a snapshot directory can be moved or copied as a whole.
public struct SnapshotManifest: Encodable, Equatable, Sendable {
  public static let currentFormat = "kscope-snapshot/1"

  public struct Kernel: Encodable, Equatable, Sendable {
    public var series: String
    public var release: String
    public var version: String
    public var buildID: String
    /// Where the host had the kernel (vmlinuz, vmlinux with DWARF, modules).
    public var directory: String
    public init(series: String, release: String, version: String, buildID: String, directory: String) {
      self.series = series
      self.release = release
      self.version = version
      self.buildID = buildID
      self.directory = directory
    }
    enum CodingKeys: String, CodingKey {
      case series, release, version, directory
      case buildID = "build_id"
    }
  }

  public struct Image: Encodable, Equatable, Sendable {
    public var key: String
    public var workload: String
    public var initramfs: String
    public var dataDisk: String
    public var olapMiB: Int
    public var hasAgent: Bool
    public init(
      key: String, workload: String, initramfs: String, dataDisk: String, olapMiB: Int, hasAgent: Bool
    ) {
      self.key = key
      self.workload = workload
      self.initramfs = initramfs
      self.dataDisk = dataDisk
      self.olapMiB = olapMiB
      self.hasAgent = hasAgent
    }
    enum CodingKeys: String, CodingKey {
      case key, workload, initramfs
      case dataDisk = "data_disk"
      case olapMiB = "olap_mib"
      case hasAgent = "has_agent"
    }
  }

  public var format: String
  public var vmName: String
  public var ram: String
  public var hints: String
  public var deviceState: String
  public var ramSize: UInt64
  public var hintSize: UInt64
  public var cpus: Int
  public var memoryLayout: [GuestRAMRegion]
  public var kernel: Kernel
  public var image: Image
  public var qemuCommandLine: [String]
  /// ISO 8601: when the parent was paused, and when the snapshot was complete.
  public var pausedAt: String
  public var completedAt: String
  /// Seconds spent saving device state and copying RAM (for the benchmarks).
  public var deviceStateSeconds: Double
  public var ramCopySeconds: Double
  /// Bytes of RAM actually written (holes and zero blocks skipped).
  public var ramBytesCopied: UInt64
  /// The parent had a virtio-balloon with free page reporting: its clones need the same device
  /// for the device state to load (absent in manifests of parents without one).
  public var freePageReporting: Bool?

  public init(
    format: String, vmName: String, ram: String, hints: String, deviceState: String,
    ramSize: UInt64, hintSize: UInt64, cpus: Int, memoryLayout: [GuestRAMRegion], kernel: Kernel,
    image: Image, qemuCommandLine: [String], pausedAt: String, completedAt: String,
    deviceStateSeconds: Double, ramCopySeconds: Double, ramBytesCopied: UInt64
  ) {
    self.format = format
    self.vmName = vmName
    self.ram = ram
    self.hints = hints
    self.deviceState = deviceState
    self.ramSize = ramSize
    self.hintSize = hintSize
    self.cpus = cpus
    self.memoryLayout = memoryLayout
    self.kernel = kernel
    self.image = image
    self.qemuCommandLine = qemuCommandLine
    self.pausedAt = pausedAt
    self.completedAt = completedAt
    self.deviceStateSeconds = deviceStateSeconds
    self.ramCopySeconds = ramCopySeconds
    self.ramBytesCopied = ramBytesCopied
  }

  enum CodingKeys: String, CodingKey {
    case format, ram, hints, kernel, image, cpus
    case vmName = "vm_name"
    case deviceState = "device_state"
    case ramSize = "ram_size"
    case hintSize = "hint_size"
    case memoryLayout = "memory_layout"
    case qemuCommandLine = "qemu_command_line"
    case pausedAt = "paused_at"
    case completedAt = "completed_at"
    case deviceStateSeconds = "device_state_seconds"
    case ramCopySeconds = "ram_copy_seconds"
    case ramBytesCopied = "ram_bytes_copied"
    case freePageReporting = "free_page_reporting"
  }

  public func encoded() throws -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    var d = try enc.encode(self)
    d.append(0x0a)
    return d
  }

  /// The largest manifest.json accepted (ours are ~2 KB).
  public static let maxManifestBytes = 1 << 20
  /// Bounds of the values a manifest may hold; everything outside is refused before use.
  public static let ramSizes: ClosedRange<UInt64> = (128 << 20)...(64 << 30)
  public static let hintSizes: ClosedRange<UInt64> = (1 << 20)...(64 << 20)
  public static let cpuCounts: ClosedRange<Int> = 1...8
  public static let maxRegions = 8
  /// x86-64 has at most 52 physical address bits.
  public static let physicalLimit: UInt64 = 1 << 52
  /// How far above `ramSize` guest RAM may end: the holes between regions (q35's PCI hole is
  /// 1.25 or 2 GiB) stay below this. A reader sizes its per-frame tables by the end of RAM, so
  /// a region at 2^50 would ask the analyzer for a 2^38-entry frame map.
  public static let maxHoleBytes: UInt64 = 4 << 30
  /// The kernel series and workloads kscope builds guests for (KscopeVM's `GuestKernel` and
  /// `Workload` use these lists).
  public static let kernelSeries = ["6.1", "6.12"]
  public static let workloads = ["web", "olap"]
  /// QEMU's device state without RAM is well under a megabyte; this bounds a hostile one.
  public static let maxDeviceStateBytes: UInt64 = 256 << 20

  /// Decodes and checks a manifest: the format, plain file names, bounded sizes and counts, a
  /// build id in hex, and a memory layout whose regions are page-aligned, sorted, disjoint (in
  /// guest-physical space and in the file) and cover exactly `ramSize` bytes of the RAM file.
  /// All arithmetic on its numbers is checked: a hostile manifest is refused, never a trap.
  public static func decode(_ data: Data) throws -> SnapshotManifest {
    try data.withUnsafeBytes { try decode(bytes: $0.bindMemory(to: UInt8.self)) }
  }

  /// The same from the file's bytes (what `Snapshot.open` read: no copy is made of them).
  public static func decode(bytes: [UInt8]) throws -> SnapshotManifest {
    try bytes.withUnsafeBufferPointer { try decode(bytes: $0) }
  }

  static func decode(bytes: UnsafeBufferPointer<UInt8>) throws -> SnapshotManifest {
    guard bytes.count <= maxManifestBytes else {
      throw SnapshotError.badSnapshot("manifest.json has \(bytes.count) bytes (at most \(maxManifestBytes))")
    }
    let m: SnapshotManifest
    do throws(ManifestReader.Failure) { m = try read(bytes) } catch {
      throw SnapshotError.badSnapshot(TerminalSafe.oneLine("manifest.json does not parse (\(error.what))", limit: 300))
    }
    try m.validate()
    return m
  }

  /// The checks of `decode`, on a manifest value.
  public func validate() throws {
    func bad(_ why: String) -> SnapshotError { .badSnapshot(TerminalSafe.oneLine(why, limit: 300)) }
    guard format == SnapshotManifest.currentFormat else {
      throw bad("manifest format '\(format)' (expected \(SnapshotManifest.currentFormat))")
    }
    for f in [ram, hints, deviceState] where !SnapshotManifest.isPlainFileName(f) {
      throw bad(
        "manifest file name '\(f)' is not a plain file name in the snapshot directory (letters, digits, '.', '-', '_')")
    }
    guard Set([ram, hints, deviceState]).count == 3 else {
      throw bad("manifest names the same file twice")
    }
    guard SnapshotManifest.isVMName(vmName) else {
      throw bad("vm_name '\(vmName)' is not a VM name (letters, digits, - and _, at most 40)")
    }
    guard SnapshotManifest.ramSizes.contains(ramSize), ramSize % (1 << 20) == 0 else {
      throw bad("ram_size \(ramSize) is not a whole number of MiB in 128 MiB..64 GiB")
    }
    guard SnapshotManifest.hintSizes.contains(hintSize), hintSize % (1 << 20) == 0 else {
      throw bad("hint_size \(hintSize) is not a whole number of MiB in 1..64 MiB")
    }
    guard SnapshotManifest.cpuCounts.contains(cpus) else {
      throw bad("cpus \(cpus) is not in \(SnapshotManifest.cpuCounts.lowerBound)..\(SnapshotManifest.cpuCounts.upperBound)")
    }
    try SnapshotManifest.checkLayout(memoryLayout, ramSize: ramSize)
    guard SnapshotManifest.isBuildID(kernel.buildID) else {
      throw bad("kernel build_id '\(kernel.buildID)' is not a hexadecimal GNU build id")
    }
    guard SnapshotManifest.kernelSeries.contains(kernel.series),
      SnapshotManifest.isPlainFileName(kernel.release), kernel.release.count <= 64
    else { throw bad("kernel series '\(kernel.series)' / release '\(kernel.release)' not supported") }
    guard kernel.version.count <= 256, SnapshotManifest.isHex(image.key), image.key.count <= 64,
      SnapshotManifest.workloads.contains(image.workload), (8...4096).contains(image.olapMiB)
    else { throw bad("image key, workload or olap size out of range") }
  }

  /// The memory layout's checks (see `decode`).
  public static func checkLayout(_ layout: [GuestRAMRegion], ramSize: UInt64) throws {
    func bad(_ why: String) -> SnapshotError { .badSnapshot("memory layout: \(why)") }
    guard !layout.isEmpty, layout.count <= maxRegions else {
      throw bad("\(layout.count) regions (1..\(maxRegions))")
    }
    var covered: UInt64 = 0
    var previousEnd: UInt64 = 0
    for (i, r) in layout.enumerated() {
      let page: UInt64 = 4096
      guard r.size > 0, r.size % page == 0, r.guestPhysicalStart % page == 0, r.fileOffset % page == 0
      else { throw bad("region \(i) is empty or not page-aligned") }
      let (end, o1) = r.guestPhysicalStart.addingReportingOverflow(r.size)
      guard !o1, end <= physicalLimit else {
        throw bad("region \(i) ends past the 52-bit physical address space")
      }
      let (fileEnd, o2) = r.fileOffset.addingReportingOverflow(r.size)
      guard !o2, fileEnd <= ramSize else { throw bad("region \(i) lies outside the \(ramSize)-byte RAM file") }
      guard i == 0 || r.guestPhysicalStart >= previousEnd else {
        throw bad("region \(i) is not sorted after, or overlaps, region \(i - 1)")
      }
      previousEnd = end
      let (sum, o3) = covered.addingReportingOverflow(r.size)
      guard !o3 else { throw bad("sizes add up past 2^64") }
      covered = sum
    }
    // File ranges must not overlap either: two guest addresses would share one byte.
    let byOffset = layout.sorted { $0.fileOffset < $1.fileOffset }
    for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.fileOffset + a.size > b.fileOffset {
      throw bad("two regions share bytes of the RAM file")
    }
    guard covered == ramSize else { throw bad("covers \(covered) bytes, ram_size is \(ramSize)") }
    let (limit, o4) = ramSize.addingReportingOverflow(maxHoleBytes)
    guard o4 || previousEnd <= limit else {
      throw bad(
        "RAM ends at guest physical 0x\(String(previousEnd, radix: 16)), more than 4 GiB of holes above its \(ramSize) bytes")
    }
  }

  /// A file name in the snapshot directory: one component of letters, digits, '.', '-', '_',
  /// not starting with '.', at most 64 characters.
  public static func isPlainFileName(_ name: String) -> Bool {
    guard let first = name.unicodeScalars.first, first != ".", name.unicodeScalars.count <= 64 else { return false }
    return name.unicodeScalars.allSatisfy {
      ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-" || $0 == "_" || $0 == "+"
    }
  }

  /// A VM name: letters, digits, '-' and '_', at most 40 (what `kscope vm` accepts).
  public static func isVMName(_ name: String) -> Bool {
    !name.isEmpty && name.unicodeScalars.count <= 40
      && name.unicodeScalars.allSatisfy {
        ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
      }
  }

  static func isHex(_ s: String) -> Bool {
    !s.isEmpty && s.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) }
  }

  /// A GNU build id: an even number of lowercase hex digits, 8..128 (SHA-1 ids have 40). It
  /// names files in the layout cache, so nothing else may pass.
  public static func isBuildID(_ s: String) -> Bool {
    isHex(s) && s.count % 2 == 0 && (8...128).contains(s.count)
  }

  /// Reads DIR/manifest.json and checks that the files it names exist with the right sizes.
  public static func load(directory: String) throws -> SnapshotManifest {
    try Snapshot.open(directory).manifest
  }
}
