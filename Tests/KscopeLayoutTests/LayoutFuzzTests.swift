import Foundation
import KscopeCore
import KscopeLayout
import Testing

/// Layouts come from files: any ISF text must load (and then pass or fail the validator) or be
/// refused, and a layout that passes must survive every lookup the walkers make. Seeded
/// mutations of a recorded layout (KSCOPE_FUZZ_ITERATIONS, KSCOPE_FUZZ_SEED), both of its
/// bytes and of its values (numbers replaced by boundary values, keys removed).
@Suite struct LayoutFuzzTests {
  static var iterations: Int {
    ProcessInfo.processInfo.environment["KSCOPE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 300
  }
  static var seed: UInt64 {
    ProcessInfo.processInfo.environment["KSCOPE_FUZZ_SEED"].flatMap { UInt64($0) }
      ?? 0x6c61_796f_7574
  }
  static let interesting: [JSONValue] = [
    .unsigned(0), .unsigned(1), .unsigned(7), .unsigned(64), .unsigned(4096), .unsigned(1 << 24),
    .unsigned((1 << 24) + 1), .unsigned(1 << 62), .unsigned(UInt64(Int64.max)), .unsigned(.max),
    .signed(-1), .signed(.min), .double(1e300), .string("x"), .null, .array([]), .object([:]),
  ]

  /// Replaces one random leaf (or removes one key) of a JSON value.
  static func mutateValue(_ v: JSONValue, depth: Int, using g: inout SplitMix64) -> JSONValue {
    switch v {
    case .object(var members) where !members.isEmpty && depth < 8:
      let key = members.keys.sorted().randomElement(using: &g)!
      if Int.random(in: 0..<10, using: &g) == 0 {
        members[key] = nil
      } else {
        members[key] = mutateValue(members[key]!, depth: depth + 1, using: &g)
      }
      return .object(members)
    case .array(var items) where !items.isEmpty && depth < 8:
      let i = Int.random(in: 0..<items.count, using: &g)
      items[i] = mutateValue(items[i], depth: depth + 1, using: &g)
      return .array(items)
    default:
      return interesting.randomElement(using: &g)!
    }
  }

  /// Everything a walker or `layout show` does with a layout.
  static func exercise(_ l: KernelLayout) {
    for name in l.userTypes.keys { _ = try? l.describe(type: name) }
    _ = l.summary()
    guard (try? l.validate(request: .default)) != nil else { return }
    for (type, members) in LayoutRequest.default.requiredMembers {
      for alternatives in members { _ = try? l.offset(of: type, member: alternatives) }
      _ = try? l.size(of: type)
    }
    _ = try? l.offset(of: "page", member: ["lru.next"])
    _ = l.isfText()
  }

  @Test func mutatedLayoutsLoadOrAreRefused() throws {
    let text = try Recorded.text(Recorded.release61)
    let json = try JSONValue.parse(text)
    var g = SplitMix64(seed: Self.seed)
    var refused = 0
    let clock = ContinuousClock()
    var slowest = Duration.zero
    for i in 0..<Self.iterations {
      let t = clock.now
      if i % 3 == 0 {
        var bytes = Array(text.utf8)
        bytes = HintDamage.mutate(bytes, using: &g)
        if let l = try? KernelLayout(isfBytes: bytes) { Self.exercise(l) } else { refused += 1 }
      } else {
        var v = json
        for _ in 0..<Int.random(in: 1...4, using: &g) {
          v = Self.mutateValue(v, depth: 0, using: &g)
        }
        do {
          let l = try KernelLayout(isf: v)
          Self.exercise(l)
          if (try? l.validate(request: .default)) == nil { refused += 1 }
        } catch {
          refused += 1
          #expect(!error.description.contains("\n"))
        }
      }
      slowest = max(slowest, clock.now - t)
    }
    #expect(refused > 0)
    #expect(slowest < .seconds(2))
  }
}
