import KscopeCore
import KscopeOS
import Logging

/// A failure of a color map producer; one line naming the input.
public struct ProducerError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// Colors a machine's memory from its kernel's page flags: a /proc/kpageflags file (this
/// machine's, or a copy taken inside a guest), with `kpagecount` and `iomem` beside it when
/// they are readable (for /proc, /proc/kpagecount and /proc/iomem).
public struct KernelPageFlagsSource: Sendable {
  public var flagsPath: String
  public var countsPath: String?
  public var iomemPath: String?
  public var pageSize: UInt32 = 4096
  public var kernelRelease: String?
  public var kernelBuildID: String?

  /// Fills in the companion files from the directory of `flagsPath` when they exist, and for
  /// /proc the running kernel's release and build id.
  public init(flagsPath: String, countsPath: String? = nil, iomemPath: String? = nil) {
    self.flagsPath = flagsPath
    let dir = Files.directoryName(flagsPath)
    self.countsPath = countsPath ?? Self.readable("\(dir)/kpagecount")
    self.iomemPath = iomemPath ?? Self.readable("\(dir)/iomem")
    if dir == "/proc" {
      kernelRelease = Files.readText("/proc/sys/kernel/osrelease").map {
        String($0.filter { !$0.isNewline })
      }
      kernelBuildID = (try? Files.read("/sys/kernel/notes", limit: 1 << 16)).flatMap(gnuBuildID)
    }
  }

  static func readable(_ path: String) -> String? { Files.isReadable(path) ? path : nil }

  /// What was produced, for the summary.
  public struct Report: Sendable {
    public var map: ColorMap
    public var usedCounts: Bool
    public var usedResourceMap: Bool
    public var notes: [String]
  }

  public func produce(created: Int64, logger: Logger) throws -> Report {
    let raw = try Files.read(flagsPath, limit: 1 << 36)
    guard !raw.isEmpty else { throw ProducerError("\(flagsPath): empty (not a kpageflags file?)") }
    guard raw.count % 8 == 0 else {
      throw ProducerError("\(flagsPath): \(raw.count) bytes is not a multiple of 8 (not a kpageflags file?)")
    }
    let flags = Self.u64Array(raw)
    logger.debug("read \(flags.count) frames of page flags from \(flagsPath)")
    var notes: [String] = []

    var counts: [UInt64]? = nil
    if let countsPath {
      let c = try Files.read(countsPath, limit: 1 << 36)
      guard c.count == raw.count else {
        throw ProducerError(
          "\(countsPath): \(c.count / 8) frames but \(flagsPath) has \(flags.count)")
      }
      counts = Self.u64Array(c)
    } else {
      notes.append("no kpagecount: the mapped/shared flags come from page flags only")
    }

    var sources: ColorSources = .kernelPageFlags
    var classifier = KernelPageFlagsClassifier()
    if let iomemPath, let text = Files.readText(iomemPath) {
      let map = ResourceMap(text: text)
      if map.usable {
        classifier = KernelPageFlagsClassifier(
          kernelImage: map.kernelImage(pageSize: UInt64(pageSize)),
          ram: map.ramFrames(pageSize: UInt64(pageSize)))
        sources.insert(.kernelResourceMap)
      } else {
        notes.append("\(iomemPath) hides its addresses (not root?): kernel image not colored")
      }
    } else {
      notes.append("no iomem: the kernel image is colored reserved/kernel-other")
    }

    let entries = classifier.classify(flags: flags, mapCounts: counts)
    let flagless = entries.reduce(0) { $0 + ($1 & 0x1F == UInt16(Color.unknown.rawValue) ? 1 : 0) }
    if flagless > 0 {
      notes.append(
        "\(flagless) frames carry no page flags at all (per-CPU free lists, struct pages not yet"
          + " initialised, flagless kernel allocations): colored unknown")
    }
    var metadata: [(key: String, value: String)] = [
      ("generator", "kscope color --kpageflags"), ("source.kpageflags", flagsPath),
    ]
    if let countsPath { metadata.append(("source.kpagecount", countsPath)) }
    if let iomemPath, sources.contains(.kernelResourceMap) {
      metadata.append(("source.iomem", iomemPath))
    }
    let header = ColorMapHeader(
      pageSize: pageSize, sources: sources, created: created,
      image: .xxh64(XXH64.hash(raw), size: UInt64(raw.count)), kernelRelease: kernelRelease,
      kernelBuildID: kernelBuildID, metadata: metadata)
    return Report(
      map: ColorMap(header: header, entries: entries), usedCounts: counts != nil,
      usedResourceMap: sources.contains(.kernelResourceMap), notes: notes)
  }

  /// Little-endian u64 values of a byte array whose length is a multiple of 8.
  static func u64Array(_ bytes: [UInt8]) -> [UInt64] {
    let n = bytes.count / 8
    return [UInt64](unsafeUninitializedCapacity: n) { out, initialized in
      bytes.withUnsafeBytes { raw in
        for i in 0..<n {
          out[i] = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
        }
      }
      initialized = n
    }
  }
}
