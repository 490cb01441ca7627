import Foundation
import KscopeOS
import KscopeSnapshot

/// A valid snapshot as `kscope vm snapshot` writes it (512 MiB, one region), for tests that
/// change one thing in it.
public enum SampleSnapshot {
  public static func manifest() -> SnapshotManifest {
    SnapshotManifest(
      format: SnapshotManifest.currentFormat, vmName: "p", ram: "ram", hints: "hints",
      deviceState: "device.state", ramSize: 512 << 20, hintSize: 4 << 20, cpus: 1,
      memoryLayout: GuestRAMRegion.q35Layout(ramSize: 512 << 20),
      kernel: .init(
        series: "6.1", release: "6.1.0-56-cloud-amd64", version: "#1 SMP PREEMPT_DYNAMIC Debian",
        buildID: "3b43fad5", directory: "/var/cache/kscope/kernels/6.1.0-56-cloud-amd64"),
      image: .init(
        key: "0123456789abcdef", workload: "web", initramfs: "/s/images/k/initramfs.cpio",
        dataDisk: "/s/images/k/data.ext4", olapMiB: 200, hasAgent: false),
      qemuCommandLine: ["qemu-system-x86_64", "-m", "512M"], pausedAt: "2026-11-26T04:00:00.000Z",
      completedAt: "2026-11-26T04:00:00.200Z", deviceStateSeconds: 0.05, ramCopySeconds: 0.1,
      ramBytesCopied: 100 << 20)
  }

  /// A sparse file of `size` bytes (KscopeOS's).
  public static func createSparseFile(_ path: String, size: UInt64) throws {
    try SparseFile.createEmpty(path, size: size)
  }

  /// A new directory holding `manifest()` and its files (sparse RAM and hints, a 4-byte device
  /// state); the caller removes it.
  public static func makeDirectory() throws -> String {
    let dir = NSTemporaryDirectory() + "kscope-snapshot-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try manifest().encoded().write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    try createSparseFile(dir + "/ram", size: 512 << 20)
    try createSparseFile(dir + "/hints", size: 4 << 20)
    try Data("QEVM".utf8).write(to: URL(fileURLWithPath: dir + "/device.state"))
    return dir
  }
}
