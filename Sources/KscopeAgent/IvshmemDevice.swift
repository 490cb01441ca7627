import KscopeOS

/// Finds the hint channel's PCI device: QEMU's ivshmem (vendor 0x1af4 Red Hat, device 0x1110
/// inter-VM shared memory). Its BAR2 is the shared region, mappable from sysfs as `resource2`.
public enum IvshmemDevice {
  public static let vendor = "0x1af4"
  public static let device = "0x1110"

  /// The sysfs directory of the first ivshmem device, or nil.
  public static func find(sysfs: String = "/sys/bus/pci/devices") -> String? {
    let names = Files.listDirectory(sysfs).map(\.name).sorted()
    for n in names {
      let dir = sysfs + "/" + n
      guard let v = Files.readText(dir + "/vendor", limit: 64),
        let d = Files.readText(dir + "/device", limit: 64)
      else { continue }
      if trim(v) == vendor && trim(d) == device { return dir }
    }
    return nil
  }

  /// Enables the device (memory decoding) when no driver did: a BAR of a disabled device
  /// reads as all ones. Writing "1" to sysfs `enable` is pci_enable_device.
  public static func enable(_ dir: String) throws(AgentError) {
    if let e = Files.readText(dir + "/enable", limit: 64), trim(e) == "1" { return }
    do { try Files.writeExisting([0x31, 0x0A], to: dir + "/enable") } catch {
      throw AgentError(error.description)
    }
  }

  static func trim(_ s: String) -> String { String(s.filter { !$0.isWhitespace }) }
}
