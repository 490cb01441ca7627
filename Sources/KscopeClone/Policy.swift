import KscopeCore

/// What a policy answers to a demand miss: frames to fetch before the faulting thread is woken
/// (always including the faulting frame unless it is a hole), and frames to queue for
/// background fetch.
public struct PolicyPlan: Equatable, Sendable {
  public var now: [FrameRange]
  public var later: [FrameRange]
  public init(now: [FrameRange], later: [FrameRange] = []) {
    self.now = now
    self.later = later
  }
}

/// A clone's fetch policy: pure decisions over a color map. The engine (and the simulator)
/// does the fetching; demand misses always go before queued background work.
///
/// To add a policy: write one file under Policies/ with a type conforming to this protocol,
/// and give it a name in `PolicyName`.
public protocol ClonePolicy: Sendable {
  var name: String { get }
  /// Frames never fetched: a clone sees zeros there (holes in the host cache file).
  func holes() -> [FrameRange]
  /// Frames fetched before the clone resumes.
  func beforeResume() -> [FrameRange]
  /// Frames queued for background fetch when the clone starts, in the order to fetch them.
  func backgroundAtStart() -> [FrameRange]
  /// A demand miss on `frame`.
  func miss(frame: UInt64) -> PolicyPlan
  /// How long background fetch holds off after a demand miss (µs), so misses own the link.
  var backoffMicros: UInt64 { get }
}

extension ClonePolicy {
  public func holes() -> [FrameRange] { [] }
  public func beforeResume() -> [FrameRange] { [] }
  public func backgroundAtStart() -> [FrameRange] { [] }
  public var backoffMicros: UInt64 { 0 }
}

public struct PolicyError: Error, Sendable, CustomStringConvertible {
  public let description: String
  init(_ d: String) { description = d }
}

/// The policies by command-line name.
public enum PolicyName {
  public static let all = [
    "eager", "on-demand", "readahead-N", "working-set", "kaleidoscope", "kaleidoscope+working-set",
  ]

  /// Builds a policy. `workingSet` is a recorded first-touch order (needed by the working-set
  /// policies); `freeIsHole` says whether the guest kernel lets free frames be served as zeros
  /// (it zeroes pages on allocation and poisons nothing on free).
  public static func make(
    _ name: String, map: ColorMap, workingSet: [UInt64]? = nil, freeIsHole: Bool = true
  ) throws(PolicyError) -> any ClonePolicy {
    switch name {
    case "eager": return EagerPolicy(frameCount: map.frameCount)
    case "on-demand": return OnDemandPolicy()
    case "kaleidoscope": return KaleidoscopePolicy(map: map, freeIsHole: freeIsHole)
    case "working-set", "kaleidoscope+working-set":
      guard let workingSet else {
        throw PolicyError("policy \(name) needs a recorded working set (--working-set TRACE)")
      }
      if name == "working-set" {
        return WorkingSetPolicy(firstTouch: workingSet, frameCount: map.frameCount)
      }
      return KaleidoscopeWorkingSetPolicy(
        colors: KaleidoscopePolicy(map: map, freeIsHole: freeIsHole),
        workingSet: WorkingSetPolicy(firstTouch: workingSet, frameCount: map.frameCount))
    default:
      if name.hasPrefix("readahead-"), let n = UInt64(name.dropFirst("readahead-".count)),
        (1...4096).contains(n)
      {
        return ReadaheadPolicy(window: n, frameCount: map.frameCount)
      }
      throw PolicyError(
        "unknown policy '\(name)' (expected \(all.joined(separator: ", ")); readahead-N takes N in 1...4096)")
    }
  }
}
