/// `working-set` (REAP, ASPLOS'21): the frames one earlier clone touched are fetched first, in
/// large sequential reads, in the background from the start; anything else on demand.
public struct WorkingSetPolicy: ClonePolicy {
  /// The recorded set, coalesced into ranges (large reads), in frame order.
  public let set: [FrameRange]
  public var name: String { "working-set" }

  /// `firstTouch`: frames in first-touch order (repeats and frames past the guest are dropped).
  public init(firstTouch: [UInt64], frameCount: UInt64) {
    set = firstTouch.filter { $0 < frameCount }.map { FrameRange(start: $0, count: 1) }.coalesced()
  }
  public func backgroundAtStart() -> [FrameRange] { set }
  public func miss(frame: UInt64) -> PolicyPlan { PolicyPlan(now: [FrameRange(start: frame, count: 1)]) }
}
