import KscopeClone
import Testing

@testable import KscopeEngine

/// The trace an engine writes for a clone that ends: its misses, each frame once, in the order
/// of its first miss, readable by the trace parser that the working-set policies' input goes
/// through.
@Test func firstTouchTraceKeepsEachFrameOnceInFirstMissOrder() throws {
  let text = EngineService.firstTouchText([7, 3, 7, 9, 3, 0], pid: 42, policy: "on-demand")
  #expect(text.hasPrefix("# first-touch order of clone 42 (its demand misses, policy on-demand)\n"))
  let accesses = try Trace.parse(Substring(text), frameCount: 10)
  #expect(accesses.map(\.frame) == [7, 3, 9, 0])
  #expect(accesses.allSatisfy { !$0.write })
  #expect(try Trace.parse(Substring(EngineService.firstTouchText([], pid: 1, policy: "x")), frameCount: 1).isEmpty)
}
