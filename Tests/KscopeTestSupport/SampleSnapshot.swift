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

  /// The largest manifest a reader may have to decode: every string at its bound (4,096 bytes;
  /// the stored QEMU argv at 256 arguments, 64 KiB), padded to just under the 1 MiB limit
  /// with a key the schema does not have (an array of strings, which Foundation's decoder held
  /// as a tree). It is valid. ReaderMemoryTests and ManifestMemoryTests measure what reading
  /// it costs.
  public static func largestManifest() throws -> Data {
    var m = SampleSnapshot.manifest()
    m.qemuCommandLine = (0..<256).map { String(format: "-arg%03d=", $0) + String(repeating: "x", count: 247) }
    m.kernel.directory = "/" + String(repeating: "d", count: 4095)
    m.kernel.version = String(repeating: "v", count: 256)
    m.image.initramfs = "/" + String(repeating: "i", count: 4095)
    m.image.dataDisk = "/" + String(repeating: "k", count: 4095)
    m.pausedAt = String(repeating: "p", count: 4096)
    m.completedAt = String(repeating: "c", count: 4096)
    let fields = try m.encoded()
    var padding = "{\n  \"padding\": ["
    let entry = "\"" + String(repeating: "-object memory-backend-file,size=1G,mem-path=/dev/shm/x ", count: 16) + "\""
    while fields.count + padding.utf8.count + entry.utf8.count + 8 < SnapshotManifest.maxManifestBytes {
      padding += (padding.hasSuffix("[") ? "\n    " : ",\n    ") + entry
    }
    padding += "\n  ],"
    return Data(padding.utf8) + fields.dropFirst()  // `fields` starts with "{"
  }
}
