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
    #expect(lines.map { $0.first ?? "" }.sorted() == ["6.1", "6.12"])
    for fields in lines {
      #expect(fields.count == 5, "\(fields)")
      guard fields.count == 5 else { continue }
      #expect(fields[1].hasPrefix(fields[0] + ".") && fields[1].hasSuffix("-cloud-amd64"))
      for sha in fields[3...4] {
        #expect(sha.count == 64 && sha.allSatisfy(\.isHexDigit), "\(sha) is not a SHA-256")
      }
    }
  }

  @Test func recordingsMatchThePins() throws {
    let pinned = Set(try Self.lines().compactMap { $0.count == 5 ? $0[1] : nil })
    #expect(Set(Recorded.releases) == pinned)
  }
}
