import Foundation
import Glibc
import KscopeTestSupport
import Testing

@testable import KscopeSnapshot

/// Issue 10: the manifest reader uses at most 2x the manifest's size. Measured in a process of
/// its own (an exit test: nothing else runs in it) around `Snapshot.open` alone: free memory is
/// given back first (malloc_trim) and the peak RSS reset (/proc/self/clear_refs), so what the
/// reader allocates shows in the peak, instead of hiding under the rest of a command's run
/// (ReaderMemoryTests measures whole commands, whose later phases peak higher).
/// glibc's (malloc.h is not in the Glibc module): gives free heap memory back to the system.
@_silgen_name("malloc_trim") func mallocTrim(_ pad: Int) -> Int32

@Suite struct ManifestMemoryTests {
  /// A field of /proc/self/status ("VmRSS", "VmHWM"), in bytes.
  static func status(_ field: String) -> UInt64 {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
      return 0
    }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
      return UInt64(line.split(separator: " ").dropFirst().first ?? "0").map { $0 * 1024 } ?? 0
    }
    return 0
  }

  @Test func openingASnapshotWithTheLargestManifestStaysWithinTwiceIt() async throws {
    let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) {
      let dir = try SampleSnapshot.makeDirectory()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let manifest = try SampleSnapshot.largestManifest()
      try manifest.write(to: URL(fileURLWithPath: dir + "/manifest.json"))
      let size = UInt64(manifest.count)
      guard size > 1000 << 10, size <= UInt64(SnapshotManifest.maxManifestBytes) else { exit(2) }
      _ = mallocTrim(0)
      let fd = open("/proc/self/clear_refs", O_WRONLY)
      guard fd >= 0, write(fd, "5", 1) == 1 else { exit(3) }
      close(fd)
      let before = Self.status("VmRSS")
      let snapshot = try Snapshot.open(dir)
      let peak = Self.status("VmHWM")
      // The figures go to the parent, which checks them (a failing exit test reports no output).
      print(
        "\(size) \(peak > before ? peak - before : 0) \(snapshot.manifest.qemuCommandLine.count)")
      exit(0)
    }
    let words = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self).split(
      separator: " ")
    let size = words.count == 3 ? UInt64(words[0]) ?? 0 : 0
    let above = words.count == 3 ? UInt64(words[1]) ?? .max : .max
    print(
      "Snapshot.open with a \(size)-byte manifest: peak RSS \(above >> 10) KiB above its start (\(String(format: "%.2f", Double(above) / Double(size)))x)"
    )
    #expect(
      size > 1000 << 10 && above <= 2 * size,
      "\(above) bytes above the start for a \(size)-byte manifest")
  }
}
