/// `on-demand`: the faulting frame only (SnowFlock's memtap, Firecracker's example handler).
public struct OnDemandPolicy: ClonePolicy {
  public init() {}
  public var name: String { "on-demand" }
  public func miss(frame: UInt64) -> PolicyPlan { PolicyPlan(now: [FrameRange(start: frame, count: 1)]) }
}
