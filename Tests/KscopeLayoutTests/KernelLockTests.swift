import Foundation
import KscopeTestSupport
import Testing

/// host/kernels.lock pins what the tests run against: each line well formed, each pinned release
/// recorded, and no recording left that no pin names (host/update-kernels.sh keeps them in step).
@Suite struct KernelLockTests {
  static func lines() throws -> [[String]] {
    try String(contentsOfFile: KernelLock.path, encoding: .utf8).split(separator: "\n")
      .filter { !$0.hasPrefix("#") && !$0.isEmpty }
      .map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
  }

  @Test func everyLineIsWellFormed() throws {
    let lines = try Self.lines()
    #expect(lines.map { $0.first ?? "" }.sorted() == ["6.1", "6.12", "extra"])
    for fields in lines {
      #expect(fields.count == 5, "\(fields)")
      guard fields.count == 5 else { continue }
      let series = fields[0] == "extra" ? "6." : fields[0] + "."
      #expect(fields[1].hasPrefix(series) && fields[1].hasSuffix("-cloud-amd64"))
      for sha in fields[3...4] {
        #expect(sha.count == 64 && sha.allSatisfy(\.isHexDigit), "\(sha) is not a SHA-256")
      }
    }
  }

  @Test func recordingsMatchThePins() throws {
    let pinned = Set(try Self.lines().compactMap { $0.count == 5 && $0[0] != "extra" ? $0[1] : nil })
    #expect(Set(Recorded.releases) == pinned)
  }

  /// The older ABI the BTF tests compare (never recorded) is fetched at a checked version too,
  /// so Debian dropping it from its archive fails loudly instead of fetching something else.
  @Test func theOlderABIIsPinned() throws {
    let extra = try Self.lines().filter { $0.first == "extra" }.map { $0.count > 1 ? $0[1] : "" }
    #expect(extra == [BTFEquivalenceTests.olderABI])
  }
}
