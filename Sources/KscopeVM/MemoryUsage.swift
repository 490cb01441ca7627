import Foundation
import KscopeOS

/// What one mapping of a file costs the host, from /proc/PID/smaps (kB figures summed over the
/// mapping's entries): resident, proportional (shared pages divided among their sharers), and
/// private (copy-on-write copies and pages only this process has).
public struct MappingUsage: Equatable, Sendable {
  public var rssKiB: UInt64 = 0
  public var pssKiB: UInt64 = 0
  public var privateKiB: UInt64 = 0
  public var sharedKiB: UInt64 = 0
  /// Copy-on-write copies in a private file mapping (the clone's writes): its own memory.
  public var anonymousKiB: UInt64 = 0
  public var mappings = 0

  public init() {}

  /// Sums the smaps entries whose path is `path`. Pure: `text` is the smaps file's content.
  /// Lines that do not parse are skipped (smaps is the kernel's, but be strict anyway).
  public static func parse(smaps text: Substring, path: String) -> MappingUsage {
    var u = MappingUsage()
    var inside = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
      // A mapping header, "start-end perms offset dev inode [path]"; then "Name: N kB" fields.
      let parts = line.split(separator: " ", omittingEmptySubsequences: true)
      if let range = parts.first, range.contains("-"), range.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
        inside = parts.count >= 6 && parts[5...].joined(separator: " ") == path
        if inside { u.mappings += 1 }
        continue
      }
      guard inside, let colon = line.firstIndex(of: ":") else { continue }
      let key = line[..<colon]
      let value = line[line.index(after: colon)...].split(separator: " ").first.flatMap { UInt64($0) } ?? 0
      switch key {
      case "Rss": u.rssKiB += value
      case "Pss": u.pssKiB += value
      case "Private_Clean", "Private_Dirty": u.privateKiB += value
      case "Shared_Clean", "Shared_Dirty": u.sharedKiB += value
      case "Anonymous": u.anonymousKiB += value
      default: break
      }
    }
    return u
  }

  public var json: [String: Any] {
    ["rss_kib": rssKiB, "pss_kib": pssKiB, "private_kib": privateKiB, "shared_kib": sharedKiB,
      "anonymous_kib": anonymousKiB,
    ]
  }
}

extension VMManager {
  /// The pid QEMU wrote for this VM (alive or not).
  public func recordedPid(_ name: String) throws -> Int32? {
    let rec = try record(name)
    guard let text = try? String(contentsOfFile: rec.config.pidPath, encoding: .utf8) else { return nil }
    return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// What a running VM's guest-RAM mapping costs the host (nil if QEMU is not running).
  public func ramUsage(_ name: String) throws -> MappingUsage? {
    let rec = try record(name)
    guard let pid = livePid(rec.config),
      // procfs reports size 0: read until end of file, not by the size.
      let smaps = Files.readText("/proc/\(pid)/smaps", limit: 64 << 20)
    else { return nil }
    let b = rec.config.ramBacking
    let path = b?.realPath ?? b?.file ?? rec.config.ramPath
    return MappingUsage.parse(smaps: Substring(smaps), path: path)
  }
}
