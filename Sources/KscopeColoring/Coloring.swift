import Dispatch
import KscopeAnalyzer
import KscopeCore
import KscopeHints
import KscopeLayout
import KscopeOS
import KscopeSnapshot
import Logging

public struct ColoringOptions: Sendable {
  /// Where the guest agent's hints come from.
  public enum Hints: Sendable, Equatable {
    /// The snapshot's hint region (none for a raw RAM file).
    case fromSnapshot
    /// A region file the user named.
    case file(String)
    /// Host introspection only.
    case ignored
  }

  /// Also color frames whose content is all zeros `zero` (reads every non-free frame).
  public var zeroScan = false
  /// Walk every process's page tables (user code, mapped/executable flags, owners).
  public var walkProcesses = true
  public var hints = Hints.fromSnapshot
  /// The content digest of the RAM file (`ImageDigest`), computed on another thread while the
  /// analysis runs.
  public var digest = true
  /// Seconds since the epoch, for the map's header.
  public var created: Int64 = 0

  public init(
    zeroScan: Bool = false, walkProcesses: Bool = true, hints: Hints = .fromSnapshot, digest: Bool = true,
    created: Int64 = 0
  ) {
    self.zeroScan = zeroScan
    self.walkProcesses = walkProcesses
    self.hints = hints
    self.digest = digest
    self.created = created
  }
}

/// A colored guest: the map as written, and what was learned on the way.
public struct ColoringResult: Sendable {
  public var map: ColorMap
  public var analysis: Analysis
  /// Where the layout came from (also the map's `source.layout`).
  public var layoutOrigin: String
  /// Why hints were not used, when they were looked for and set aside before the merge.
  public var hintNote: String?
}

/// Coloring a guest from outside, as a library call: `kscope color` and `kscope-bench color`
/// both come here. The data path, in one direction: the input (KscopeSnapshot: validated
/// manifest, mapped RAM) -> the layout (`LayoutProvider`, validated here) -> the hints (read,
/// checked against this guest) -> the analyzer's phases (KscopeAnalyzer) -> the header
/// (digest, sources). Writing the map is the caller's (`ColorMapFile.write`).
public enum Coloring {
  public static func color(
    _ input: ColoringInput, layoutProvider: some LayoutProvider, options: ColoringOptions = ColoringOptions(),
    logger: Logger = Logger(label: "kscope.color")
  ) throws -> ColoringResult {
    // The digest starts before the layout is resolved (BTF parsing, kallsyms) and goes on
    // through the analysis.
    let digest = DigestJob(memory: input.memory, enabled: options.digest)
    let validated: ValidatedLayout
    do {
      let (layout, origin) = try layoutProvider.layout(for: input)
      validated = try ValidatedLayout(layout, origin: origin)
    } catch {
      _ = try? digest.wait()
      throw error
    }
    return try color(input, layout: validated, digest: digest, options: options, logger: logger)
  }

  /// The same with a layout validated beforehand (the benchmarks validate theirs once, outside
  /// the timing).
  public static func color(
    _ input: ColoringInput, layout validated: ValidatedLayout, options: ColoringOptions = ColoringOptions(),
    logger: Logger = Logger(label: "kscope.color")
  ) throws -> ColoringResult {
    try color(
      input, layout: validated, digest: DigestJob(memory: input.memory, enabled: options.digest), options: options,
      logger: logger)
  }

  static func color(
    _ input: ColoringInput, layout validated: ValidatedLayout, digest: DigestJob, options: ColoringOptions,
    logger: Logger
  ) throws -> ColoringResult {
    let layout = validated.layout
    let origin = validated.origin
    let (hints, hintNote) = readHints(input, options.hints)
    let analysis: Analysis
    do {
      analysis = try Analyzer.analyze(
        memory: input.memory, layout: layout,
        options: AnalyzerOptions(zeroScan: options.zeroScan, walkProcesses: options.walkProcesses, hints: hints),
        created: options.created, logger: logger)
    } catch {
      _ = try? digest.wait()
      throw ColoringError("\(input.ramPath): \(error)")
    }
    var map = analysis.map
    map.header.image = try digest.wait()
    map.header.metadata.append(("source.ram", input.ramPath))
    map.header.metadata.append(("source.layout", origin))
    return ColoringResult(map: map, analysis: analysis, layoutOrigin: origin, hintNote: hintNote)
  }

  /// The hints are the guest's word: a region that does not pass the reader's checks (or
  /// describes another machine's frames) is set aside with its reason, and the analysis goes
  /// on with host introspection only.
  public static func readHints(_ input: ColoringInput, _ choice: ColoringOptions.Hints) -> (HintSet?, String?) {
    let path: String
    switch choice {
    case .ignored: return (nil, nil)
    case .file(let p): path = p
    case .fromSnapshot:
      guard let snapshot = input.snapshot else { return (nil, nil) }
      path = snapshot.hints.path
    }
    switch readHintRegion(input, choice) {
    case nil: return (nil, nil)
    case .success(let h)?:
      if let why = HintFit.mismatch(h, guestEnd: input.memory.end, regionSize: input.snapshot?.manifest.hintSize) {
        return (nil, "hints rejected (\(path): \(why)): host introspection only")
      }
      return (h, nil)
    case .failure(let e)?:
      return (nil, e == .empty ? "no hints (the guest published none)" : "hints rejected (\(path): \(e)): host introspection only")
    }
  }

  /// The hint region, read with the seqlock reader (a copy the agent was not writing) and
  /// validated (`HintRegionFile`); nil when hints are not wanted or there are none to read.
  public static func readHintRegion(_ input: ColoringInput, _ choice: ColoringOptions.Hints) -> Result<HintSet, HintError>? {
    do throws(HintError) {
      switch choice {
      case .ignored: return nil
      case .file(let p): return .success(try HintRegionFile.read(p))
      case .fromSnapshot:
        guard let snapshot = input.snapshot else { return nil }
        return .success(try HintRegionFile.read(snapshot.hints))
      }
    } catch { return .failure(error) }
  }
}


/// A kernel layout that passed the one validator (`KernelLayout.validate`), whatever its
/// origin: the only kind `Coloring.color` gives a walker.
public struct ValidatedLayout: Sendable {
  public let layout: KernelLayout
  /// Where it came from (the map's `source.layout`).
  public let origin: String

  public init(_ layout: KernelLayout, origin: String) throws {
    do { try layout.validate(request: .default) } catch {
      throw ColoringError("\(TerminalSafe.oneLine(origin)): unusable layout: \(error)")
    }
    self.layout = layout
    self.origin = origin
  }
}

/// The content digest of a RAM image: the RAM file is read on the other core while the layout
/// is resolved and the analysis runs; whatever is left when they are done, both cores finish.
final class DigestJob: Sendable {
  private let job: BlockTreeDigest?

  init(memory: RAMImage, enabled: Bool) {
    job = enabled ? memory.digestJob() : nil
    job?.start()
  }

  func wait() throws -> ImageDigest {
    try job?.finish() ?? .none
  }
}
