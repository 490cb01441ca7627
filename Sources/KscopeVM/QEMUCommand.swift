import Foundation

/// The snapshot model's region type, under the name the VM layer has always used.
public typealias GuestMemoryRegion = GuestRAMRegion

extension GuestMemoryRegion {
  /// The RAM backend's regions as QEMU really maps them, from HMP `info mtree -f`: the flat view
  /// of the "memory" address space, lines `START-END (prio P, ram|rom): <backend>[ @OFFSET]`.
  /// Pieces contiguous in both guest-physical address and file offset are merged (the BIOS
  /// shadow areas below 1 MiB show up as rom/ram pieces of the same RAM).
  public static func parseFlatView(_ text: String, backend: String = "ram") -> [GuestMemoryRegion] {
    var inMemoryView = false
    var sawMemoryAS = false
    var regions: [GuestMemoryRegion] = []
    // HMP output ends lines with CRLF ("\r\n" is one Character: split on the scalars).
    for raw in text.components(separatedBy: .newlines) {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.hasPrefix("FlatView #") {
        if sawMemoryAS { break }  // the memory view is complete
        inMemoryView = false
        continue
      }
      if line.hasPrefix("AS \"memory\"") {
        inMemoryView = true
        sawMemoryAS = true
        continue
      }
      guard inMemoryView else { continue }
      // "0000000100000000-000000013fffffff (prio 0, ram): ram @0000000080000000"
      guard let colon = line.range(of: "): ") else { continue }
      let head = line[..<colon.lowerBound]
      let tail = line[colon.upperBound...].split(separator: " ")
      guard head.contains(", ram") || head.contains(", rom"), tail.first.map(String.init) == backend
      else { continue }
      let bounds = head.split(separator: " ").first?.split(separator: "-") ?? []
      guard bounds.count == 2, let start = UInt64(bounds[0], radix: 16),
        let end = UInt64(bounds[1], radix: 16), end >= start
      else { continue }
      // QEMU prints " @OFFSET" only when the offset into the backend is not zero.
      var offset: UInt64 = 0
      if tail.count >= 2, tail[1].hasPrefix("@"), let o = UInt64(tail[1].dropFirst(), radix: 16) {
        offset = o
      }
      let r = GuestMemoryRegion(
        guestPhysicalStart: start, size: end - start + 1, fileOffset: offset)
      if let last = regions.last, last.guestPhysicalStart + last.size == r.guestPhysicalStart,
        last.fileOffset + last.size == r.fileOffset
      {
        regions[regions.count - 1].size += r.size
      } else {
        regions.append(r)
      }
    }
    return regions
  }
}

/// Parses "512M", "1G", "768m", "2048" (MiB) into bytes. Guests need at least 128 MiB (the
/// cloud kernel plus the initramfs) and we cap at 64 GiB.
public func parseMemorySize(_ s: String) throws -> UInt64 {
  let t = s.trimmingCharacters(in: .whitespaces).uppercased()
  var digits = t
  var unit: UInt64 = 1 << 20
  if let last = t.last, last.isLetter {
    digits = String(t.dropLast())
    switch last {
    case "M": unit = 1 << 20
    case "G": unit = 1 << 30
    default: throw VMError.invalidArgument("bad memory size '\(s)' (use e.g. 512M or 1G)")
    }
  }
  guard let n = UInt64(digits), n > 0 else {
    throw VMError.invalidArgument("bad memory size '\(s)' (use e.g. 512M or 1G)")
  }
  let bytes = n * unit
  guard bytes >= 128 << 20, bytes <= 64 << 30 else {
    throw VMError.invalidArgument("memory size '\(s)' out of range (128M..64G)")
  }
  return bytes
}

/// Everything that fixes a VM's QEMU command line. A clone reuses its parent's config with its
/// own name, paths and host port; all devices must match for the device state to load.
public struct VMConfig: Codable, Equatable, Sendable {
  public var name: String
  public var directory: String
  public var memoryBytes: UInt64
  public var cpus: Int
  public var kernel: GuestKernel
  public var image: GuestImage
  public var hostPort: UInt16
  /// The size of the ivshmem hint region.
  public var hintBytes: UInt64 = 4 << 20
  /// Parents map the hint file shared, so the host reads what the guest agent writes. Clones map
  /// their copy private: QEMU 7.2's x-ignore-shared requires every shared RAM block to sit at the
  /// same guest-physical address on both sides *before* the device state loads, and a PCI BAR is
  /// only mapped once it has loaded ("Mismatched GPAs for block .../hints"). A private block is
  /// not ignored, so it loads; its content is the copied file, as the parent left it.
  public var hintsShared = true
  /// Clones that do not own a RAM copy: the file QEMU maps privately as guest RAM (nil: the VM's
  /// own `ram` file, shared).
  public var ramBacking: RAMBacking?
  /// The NIC's MAC address: parents share one; each clone gets its own (`cloneMAC`). Optional
  /// in vm.json (records written before it existed decode as parents).
  public var macAddress: String?
  /// A virtio-balloon with free page reporting (`StartOptions.freePageReporting`); nil: none
  /// (records written before it existed).
  public var freePageReporting: Bool?
  public var mac: String {
    get { macAddress ?? "52:54:00:6b:73:01" }
    set { macAddress = newValue }
  }

  public var ramPath: String { directory + "/ram" }
  public var hintsPath: String { directory + "/hints" }
  public var qmpPath: String { directory + "/qmp.sock" }
  public var controlPath: String { directory + "/control.sock" }
  public var consolePath: String { directory + "/console.log" }
  public var pidPath: String { directory + "/qemu.pid" }
  public var qemuLogPath: String { directory + "/qemu.log" }

  /// The kernel command line. `panic=-1` plus `-no-reboot` make a panicking guest exit QEMU, so
  /// a failed boot is seen at once instead of at the timeout.
  public var kernelCommandLine: String {
    "console=ttyS0 panic=-1 loglevel=4 kscope.workload=\(image.workload.rawValue)"
  }

  /// The QEMU argv. `incoming` adds `-incoming defer` (the clone waits for `migrate-incoming`).
  public func qemuArguments(incoming: Bool = false) -> [String] {
    let mib = memoryBytes >> 20
    var a = [
      "qemu-system-x86_64", "-name", name,
      // TCG: nested KVM hangs on these machines (see environment.md).
      "-machine", "q35,memory-backend=ram", "-accel", "tcg", "-cpu", "max",
      "-smp", String(cpus), "-m", "\(mib)M",
      "-object",
      "memory-backend-file,id=ram,size=\(mib)M,mem-path=\(qemuOptionValue(ramBacking?.file ?? ramPath)),share=\(ramBacking == nil ? "on" : "off")",
      "-object",
      "memory-backend-file,id=hints,size=\(hintBytes >> 20)M,mem-path=\(hintsPath),share=\(hintsShared ? "on" : "off")",
      // master=on: without it ivshmem is in "peer mode", which blocks migration (snapshots).
      "-device", "ivshmem-plain,memdev=hints,master=on",
      "-device", "vmcoreinfo",
      // The kvmvapic option ROM makes QEMU read guest RAM during an incoming migration; off on
      // parents and clones alike so lazy clones can serve RAM from a fault handler later.
      "-global", "apic-common.vapic=off",
      "-kernel", kernel.vmlinuz, "-initrd", image.initramfs, "-append", kernelCommandLine,
      // The data disk is the image's, shared by every VM of that image: each VM writes only to
      // a copy-on-write overlay of its own (snapshot=on: a temporary qcow2 QEMU discards at
      // exit), so no VM can change another's disk. Parents mount it read-only, so a snapshot
      // never depends on what a parent wrote there.
      "-drive", "file=\(qemuOptionValue(image.dataDisk)),format=raw,if=none,id=data,snapshot=on",
      "-device", "virtio-blk-pci,drive=data",
      // A VM generation ID: QEMU makes a fresh one per process (guid=auto), so a clone's
      // guest sees a new generation after its device state loads and reseeds its RNG (kernels
      // with CONFIG_VMGENID; kscope also reseeds through the control channel).
      "-device", "vmgenid,guid=auto",
      // restrict=on: the guest reaches neither the host nor the outside; the explicit
      // loopback forward still works.
      "-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:\(hostPort)-:80",
      "-device", "virtio-net-pci,netdev=net0,mac=\(mac)",
      "-chardev", "socket,id=control,path=\(controlPath),server=on,wait=off",
      "-serial", "file:\(consolePath)", "-serial", "chardev:control",
      "-qmp", "unix:\(qmpPath),server=on,wait=off",
      "-display", "none", "-vga", "none", "-no-reboot",
      "-daemonize", "-pidfile", pidPath,
    ]
    // Last among the devices, so the others keep the PCI slots they have without it.
    if freePageReporting == true { a += ["-device", "virtio-balloon-pci,free-page-reporting=on"] }
    if incoming { a += ["-incoming", "defer"] }
    return a
  }
}

/// Where a clone's guest RAM comes from when it is not its own copy.
public struct RAMBacking: Codable, Equatable, Sendable {
  /// "template" (the snapshot's RAM file) or "lazy" (the engine's host cache file).
  public var mode: String
  /// The file QEMU maps privately: the clone's writes stay its own, the file is never written.
  public var file: String
  /// Lazy clones: the engine's directory (its stats), and the policy it serves with.
  public var engineDirectory: String?
  public var policy: String?
  /// The file's own path, where `file` is a /proc/PID/fd link (what smaps names).
  public var realPath: String?
  public init(
    mode: String, file: String, realPath: String? = nil, engineDirectory: String? = nil,
    policy: String? = nil
  ) {
    self.mode = mode
    self.file = file
    self.realPath = realPath
    self.engineDirectory = engineDirectory
    self.policy = policy
  }
}

/// A value inside a QEMU `-object`/`-drive` option list: QEMU reads ",," as a literal comma, so
/// a path with a comma cannot add options of its own.
func qemuOptionValue(_ s: String) -> String { s.replacingOccurrences(of: ",", with: ",,") }

extension VMConfig {
  /// A locally administered unicast MAC for a clone, from its name and directory (distinct
  /// clones on one host differ; 24 bits of hash, so collisions are possible but rare).
  public static func cloneMAC(name: String, directory: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in (name + "\u{0}" + directory).utf8 {
      h = (h ^ UInt64(b)) &* 0x100_0000_01b3
    }
    let bytes = [0x52, 0x54, 0x01, UInt8(truncatingIfNeeded: h >> 16), UInt8(truncatingIfNeeded: h >> 8), UInt8(truncatingIfNeeded: h)]
    return bytes.map { String(format: "%02x", $0) }.joined(separator: ":")
  }
}
