import KscopeCore

/// What merging the guest agent's hints into a host-introspection map did.
public struct HintMergeReport: Sendable {
  /// Why the hints were not used at all (another kernel build, ...); nil when they were.
  public var rejected: String?
  public var generation: UInt64 = 0
  /// Frames both sources could class, and how many of them agreed.
  public var compared = 0
  public var agreed = 0
  /// (hint's class, host's class) -> frames, where they disagree. The host's color stays.
  public var disagreements: [String: Int] = [:]
  /// Frames the host could not class (unknown) that the hints colored: they take the hint's
  /// color, flagged `hinted`.
  public var decidedByHints = 0
  /// Page-cache extents that got a file path from the hints.
  public var namedExtents = 0
}

/// Merges validated hints into a map made by host introspection. The host is the authority:
/// the hints only fill in what it could not learn (paths of cached files, frames it left
/// unknown) and every disagreement is counted, never silently resolved in the guest's favour.
/// Pure: the hints have already passed the reader's checks, but their content is still the
/// guest's word.
public enum HintMerge {
  /// The classes both sources can name (kpageflags' view vs struct page's).
  static func coarse(_ c: Color) -> String? {
    switch c {
    case .free: "free"
    case .kernelHeap: "slab"
    case .pageTable: "page-table"
    case .userData: "anon"
    case .pageCache, .userCode: "page-cache"
    default: nil
    }
  }

  public static func merge(_ map: ColorMap, hints: HintSet) -> (ColorMap, HintMergeReport) {
    var report = HintMergeReport()
    report.generation = hints.generation
    // Hints are only used when both sides name the same kernel build: a missing build id on
    // either side is a refusal, not a pass.
    guard !hints.buildIDHex.isEmpty else {
      report.rejected = "the hints name no kernel build id: cannot tell they are from this kernel"
      return (map, report)
    }
    guard let ours = map.header.kernelBuildID, !ours.isEmpty else {
      report.rejected = "the memory's kernel has no build id (no BUILD-ID in its vmcoreinfo): cannot check the hints"
      return (map, report)
    }
    guard ours == hints.buildIDHex else {
      report.rejected = "the hints are from kernel build \(hints.buildIDHex), the memory from \(ours)"
      return (map, report)
    }
    guard hints.pageSize == map.header.pageSize else {
      report.rejected = "the hints use \(hints.pageSize)-byte pages, the map \(map.header.pageSize)"
      return (map, report)
    }
    var entries = map.entries
    if let table = hints.frames {
      let n = min(UInt64(entries.count), table.frameCount)
      for f in 0..<n {
        guard let hint = table.entry(PageFrameNumber(f)) else { continue }
        let host = FrameEntry(rawValue: entries[Int(f)])
        if host.color == .unknown && hint.color != .unknown {
          entries[Int(f)] = FrameEntry(hint.color, host.flags.union(.hinted)).rawValue
          report.decidedByHints += 1
          continue
        }
        guard let a = coarse(hint.color), let b = coarse(host.color) else { continue }
        report.compared += 1
        if a == b {
          report.agreed += 1
        } else {
          report.disagreements["\(a)->\(b)", default: 0] += 1
          entries[Int(f)] = FrameEntry(host.color, host.flags.union(.anomaly)).rawValue
        }
      }
    }
    var extents = map.extents
    for i in extents.indices {
      guard extents[i].path == nil, let file = extents[i].file,
        let cached = hints.file(device: file.device, inode: file.inode), !cached.path.isEmpty
      else { continue }
      extents[i].path = cached.path
      report.namedExtents += 1
    }
    var header = map.header
    header.sources.insert(.guestHints)
    header.metadata.append(("hints.generation", String(hints.generation)))
    header.metadata.append(("hints.published", String(hints.published)))
    return (ColorMap(header: header, entries: entries, extents: extents), report)
  }
}
