/// `readahead-N`: colour-blind; the N frames around each miss (the faulting frame, then half the
/// window on each side, clipped to the guest).
public struct ReadaheadPolicy: ClonePolicy {
  public let window: UInt64
  public let frameCount: UInt64
  public init(window: UInt64, frameCount: UInt64) {
    self.window = max(1, window)
    self.frameCount = frameCount
  }
  public var name: String { "readahead-\(window)" }
  public func miss(frame: UInt64) -> PolicyPlan {
    let before = (window - 1) / 2
    let lo = frame >= before ? frame - before : 0
    let hi = min(lo + window, frameCount)
    let start = hi >= window ? min(lo, hi - window) : 0
    return PolicyPlan(now: [FrameRange(start: start, count: hi - start)])
  }
}
