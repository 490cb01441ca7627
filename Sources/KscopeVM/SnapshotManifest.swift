import Foundation

/// `DIR/manifest.json` of a snapshot: what the analyzer and the clone engine read. File names are
/// relative to DIR, so a snapshot directory can be moved or copied as a whole.
public struct SnapshotManifest: Codable, Equatable, Sendable {
  public static let currentFormat = "kscope-snapshot/1"

  public struct Kernel: Codable, Equatable, Sendable {
    public var series: String
    public var release: String
    public var version: String
    public var buildID: String
    /// Where the host had the kernel (vmlinuz, vmlinux with DWARF, modules).
    public var directory: String
    enum CodingKeys: String, CodingKey {
      case series, release, version, directory
      case buildID = "build_id"
    }
  }

  public struct Image: Codable, Equatable, Sendable {
    public var key: String
    public var workload: String
    public var initramfs: String
    public var dataDisk: String
    public var olapMiB: Int
    public var hasAgent: Bool
    enum CodingKeys: String, CodingKey {
      case key, workload, initramfs
      case dataDisk = "data_disk"
      case olapMiB = "olap_mib"
      case hasAgent = "has_agent"
    }
  }

  public var format: String
  public var vmName: String
  public var ram: String
  public var hints: String
  public var deviceState: String
  public var ramSize: UInt64
  public var hintSize: UInt64
  public var cpus: Int
  public var memoryLayout: [GuestMemoryRegion]
  public var kernel: Kernel
  public var image: Image
  public var qemuCommandLine: [String]
  /// ISO 8601: when the parent was paused, and when the snapshot was complete.
  public var pausedAt: String
  public var completedAt: String
  /// Seconds spent saving device state and copying RAM (for the benchmarks).
  public var deviceStateSeconds: Double
  public var ramCopySeconds: Double
  /// Bytes of RAM actually written (holes and zero blocks skipped).
  public var ramBytesCopied: UInt64

  enum CodingKeys: String, CodingKey {
    case format, ram, hints, kernel, image, cpus
    case vmName = "vm_name"
    case deviceState = "device_state"
    case ramSize = "ram_size"
    case hintSize = "hint_size"
    case memoryLayout = "memory_layout"
    case qemuCommandLine = "qemu_command_line"
    case pausedAt = "paused_at"
    case completedAt = "completed_at"
    case deviceStateSeconds = "device_state_seconds"
    case ramCopySeconds = "ram_copy_seconds"
    case ramBytesCopied = "ram_bytes_copied"
  }

  public func encoded() throws -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    var d = try enc.encode(self)
    d.append(0x0a)
    return d
  }

  /// Decodes and checks a manifest: the format, relative file names, and a layout that covers
  /// exactly `ramSize` bytes of the RAM file.
  public static func decode(_ data: Data) throws -> SnapshotManifest {
    let m: SnapshotManifest
    do { m = try JSONDecoder().decode(SnapshotManifest.self, from: data) } catch {
      throw VMError.badSnapshot("manifest.json does not parse (\(describe(error)))")
    }
    guard m.format == currentFormat else {
      throw VMError.badSnapshot("manifest format '\(m.format)' (expected \(currentFormat))")
    }
    for f in [m.ram, m.hints, m.deviceState] where f.isEmpty || f.hasPrefix("/") || f.contains("..")
    {
      throw VMError.badSnapshot(
        "manifest file name '\(f)' is not relative to the snapshot directory")
    }
    let covered = m.memoryLayout.reduce(UInt64(0)) { $0 + $1.size }
    guard m.ramSize > 0, covered == m.ramSize,
      m.memoryLayout.allSatisfy({ $0.fileOffset + $0.size <= m.ramSize })
    else { throw VMError.badSnapshot("memory layout does not cover ram_size \(m.ramSize)") }
    return m
  }

  /// Reads DIR/manifest.json and checks that the files it names exist with the right sizes.
  public static func load(directory: String) throws -> SnapshotManifest {
    guard let data = FileManager.default.contents(atPath: directory + "/manifest.json") else {
      throw VMError.badSnapshot("\(directory)/manifest.json is missing or unreadable")
    }
    let m = try decode(data)
    for (file, size) in [(m.ram, m.ramSize), (m.hints, m.hintSize), (m.deviceState, UInt64(0))] {
      let path = directory + "/" + file
      guard let attrs = try? FileManager.default.attributesOfItem(atPath: path) else {
        throw VMError.badSnapshot("\(path) is missing")
      }
      let actual = attrs[.size] as? UInt64 ?? 0
      if size > 0 && actual != size {
        throw VMError.badSnapshot("\(path) has \(actual) bytes, manifest says \(size)")
      }
      if size == 0 && actual == 0 { throw VMError.badSnapshot("\(path) is empty") }
    }
    return m
  }

  static func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _): return "missing \"\(key.stringValue)\""
    case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
      return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
    case DecodingError.dataCorrupted: return "not valid JSON"
    default: return "\(error)"
    }
  }
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, then rename.
func writeAtomically(_ data: Data, to path: String) throws {
  let tmp = path + ".tmp-\(getpid())"
  do { try data.write(to: URL(fileURLWithPath: tmp)) } catch {
    throw VMError.invalidArgument("cannot write \(tmp): \(error.localizedDescription)")
  }
  try renameFile(tmp, path)
}

let iso8601: @Sendable (Date) -> String = { date in
  let f = ISO8601DateFormatter()
  f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
  return f.string(from: date)
}
