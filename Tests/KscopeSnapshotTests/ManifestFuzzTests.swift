import Foundation
import KscopeCore
import KscopeTestSupport
import Testing

@testable import KscopeSnapshot

/// Manifests come from snapshots: any JSON must decode to a manifest that passes every check
/// (and so cannot make kscope trap, escape its directory or reach a shell) or be refused with
/// one line. Seeded mutations of a valid manifest's values and bytes (KSCOPE_FUZZ_ITERATIONS,
/// KSCOPE_FUZZ_SEED).
@Suite struct ManifestFuzzTests {
  static var iterations: Int {
    ProcessInfo.processInfo.environment["KSCOPE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 1000
  }
  static var seed: UInt64 {
    ProcessInfo.processInfo.environment["KSCOPE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x6d61_6e69
  }
  static var interesting: [Any] {
    [
      0, 1, -1, 4095, 4096, 1 << 20, 128 << 20, 1 << 32, Int64.max, Int64.min, UInt64.max,
      UInt64.max - 4095,
      1e300, "", "..", "a/b", "ds';touch /tmp/PWNED;'", "\u{1b}[2J", NSNull(), [Any](),
      [String: Any](), true,
    ]
  }

  static func mutate(_ v: Any, depth: Int, using g: inout SplitMix64) -> Any {
    if var d = v as? [String: Any], !d.isEmpty, depth < 6 {
      let key = d.keys.sorted().randomElement(using: &g)!
      if Int.random(in: 0..<12, using: &g) == 0 {
        d[key] = nil
      } else {
        d[key] = mutate(d[key]!, depth: depth + 1, using: &g)
      }
      return d
    }
    if var a = v as? [Any], !a.isEmpty, depth < 6 {
      let i = Int.random(in: 0..<a.count, using: &g)
      if Int.random(in: 0..<6, using: &g) == 0 {
        a.append(a[i])
      } else {
        a[i] = mutate(a[i], depth: depth + 1, using: &g)
      }
      return a
    }
    return interesting.randomElement(using: &g)!
  }

  @Test func mutatedManifestsPassEveryCheckOrAreRefused() throws {
    var big = SampleSnapshot.manifest()
    big.ramSize = 4 << 30
    big.memoryLayout = GuestRAMRegion.q35Layout(ramSize: 4 << 30)
    let bases = try [SampleSnapshot.manifest(), big].map {
      try JSONSerialization.jsonObject(with: try $0.encoded())
    }
    var g = SplitMix64(seed: Self.seed)
    var accepted = 0
    for i in 0..<Self.iterations {
      var v = bases.randomElement(using: &g)!
      for _ in 0..<Int.random(in: 1...3, using: &g) { v = Self.mutate(v, depth: 0, using: &g) }
      guard var data = try? JSONSerialization.data(withJSONObject: v) else { continue }
      if i % 4 == 0 { data = Data(HintDamage.mutate([UInt8](data), using: &g)) }
      do {
        let m = try SnapshotManifest.decode(data)
        accepted += 1
        // What passes is within every bound the readers rely on.
        #expect(SnapshotManifest.cpuCounts.contains(m.cpus))
        #expect(SnapshotManifest.isBuildID(m.kernel.buildID))
        for f in [m.ram, m.hints, m.deviceState] {
          #expect(SnapshotManifest.isPlainFileName(f) && !f.contains("/") && !f.contains("'"))
        }
        var end: UInt64 = 0
        for r in m.memoryLayout {
          #expect(r.guestPhysicalStart >= end)
          end = r.guestPhysicalStart + r.size
          #expect(r.fileOffset + r.size <= m.ramSize)
        }
      } catch {
        #expect(!"\(error)".contains("\n"))
      }
    }
    #expect(accepted > 0)
  }
}
