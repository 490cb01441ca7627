/// `eager`: every frame before the clone resumes (today's full copy). Colour-blind: free frames
/// are copied too.
public struct EagerPolicy: ClonePolicy {
  public let frameCount: UInt64
  public init(frameCount: UInt64) { self.frameCount = frameCount }
  public var name: String { "eager" }
  public func beforeResume() -> [FrameRange] {
    frameCount > 0 ? [FrameRange(start: 0, count: frameCount)] : []
  }
  public func miss(frame: UInt64) -> PolicyPlan { PolicyPlan(now: [FrameRange(start: frame, count: 1)]) }
}
