import Foundation
import KscopeTestSupport
import Testing

@testable import KscopeSnapshot

@Suite struct ManifestTests {
  static func manifest() -> SnapshotManifest { SampleSnapshot.manifest() }

  @Test func roundTripsWithTheDocumentedKeys() throws {
    let m = Self.manifest()
    let data = try m.encoded()
    #expect(try SnapshotManifest.decode(data) == m)
    let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
    #expect(obj["ram"] as? String == "ram")
    #expect(obj["hints"] as? String == "hints")
    #expect(obj["device_state"] as? String == "device.state")
    let kernel = obj["kernel"] as! [String: Any]
    #expect(kernel["release"] as? String == "6.1.0-56-cloud-amd64")
    #expect(kernel["build_id"] as? String == "3b43fad5")
    #expect(kernel["version"] as? String == "#1 SMP PREEMPT_DYNAMIC Debian")
    let layout = obj["memory_layout"] as! [[String: Any]]
    #expect(layout.first?["guest_physical_start"] as? Int == 0)
    #expect(layout.first?["file_offset"] as? Int == 0)
    #expect(obj["ram_size"] as? Int == 512 << 20)
    #expect(obj["qemu_command_line"] as? [String] == ["qemu-system-x86_64", "-m", "512M"])
  }

  @Test func damagedManifestsAreRejectedWithOneLine() throws {
    var absolute = Self.manifest()
    absolute.ram = "/etc/passwd"
    var escaping = Self.manifest()
    escaping.deviceState = "../x"
    var shortLayout = Self.manifest()
    shortLayout.memoryLayout = [
      GuestRAMRegion(guestPhysicalStart: 0, size: 1 << 20, fileOffset: 0)
    ]
    var wrongFormat = Self.manifest()
    wrongFormat.format = "something-else"
    let good = try Self.manifest().encoded()
    let truncated = good.prefix(good.count / 2)
    let missingKey = Data(
      String(decoding: good, as: UTF8.self).replacingOccurrences(
        of: "\"device_state\"", with: "\"x\""
      ).utf8)
    for bad in [
      try absolute.encoded(), try escaping.encoded(), try shortLayout.encoded(),
      try wrongFormat.encoded(), Data(truncated), missingKey, Data("[]".utf8),
    ] {
      #expect(throws: SnapshotError.self) { try SnapshotManifest.decode(bad) }
      do { _ = try SnapshotManifest.decode(bad) } catch {
        #expect(!"\(error)".contains("\n"))
      }
    }
  }

  @Test func loadChecksTheFilesItNames() throws {
    let dir = NSTemporaryDirectory() + "kscope-manifest-\(getpid())"
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect(throws: SnapshotError.badSnapshot("\(dir)/manifest.json is missing or unreadable")) {
      try SnapshotManifest.load(directory: dir)
    }
    try Self.manifest().encoded().write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    #expect(throws: SnapshotError.badSnapshot("\(dir)/ram is missing")) {
      try SnapshotManifest.load(directory: dir)
    }
    try SampleSnapshot.createSparseFile(dir + "/ram", size: 256 << 20)  // wrong size
    try SampleSnapshot.createSparseFile(dir + "/hints", size: 4 << 20)
    try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/device.state"))
    #expect(throws: SnapshotError.self) { try SnapshotManifest.load(directory: dir) }
    try SampleSnapshot.createSparseFile(dir + "/ram", size: 512 << 20)
    #expect(try SnapshotManifest.load(directory: dir) == Self.manifest())
  }
}
