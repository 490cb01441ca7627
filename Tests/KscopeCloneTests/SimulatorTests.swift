import KscopeCore
import Testing

@testable import KscopeClone

@Suite struct SimulatorTests {
  let map = smallMap()
  let sim = Simulator(link: LinkModel(name: "test", roundTripMicros: 10, bytesPerMicro: 4096, faultMicros: 5))

  func trace(_ frames: [UInt64]) -> [Access] { frames.map { Access(frame: $0, write: false) } }

  @Test func onDemandFaultsOncePerDistinctFrameAndWastesNothing() {
    let m = sim.run(policy: OnDemandPolicy(), frameCount: 64, trace: trace([1, 2, 1, 9, 2, 40]))
    #expect(m.demandFaults == 4)
    #expect(m.pagesFetched == 4 && m.pagesPrefetched == 0 && m.waste == 0 && m.holes == 0)
    #expect(m.touchedPages == 4 && m.footprintPages == 4 && m.bytesMoved == 4 * 4096)
    // Each miss: 5 µs fault + 10 µs round trip + 1 page at 4096 B/µs.
    #expect(m.faultLatency.count == 4 && m.faultLatency.p50 == 16)
    #expect(m.timeToMisses.map(\.misses) == [1])
  }

  @Test func eagerNeverFaultsAndWastesWhatIsNotTouched() {
    let m = sim.run(policy: EagerPolicy(frameCount: 64), frameCount: 64, trace: trace([1, 2, 9]))
    #expect(m.demandFaults == 0 && m.pagesFetched == 64 && m.waste == 61 && m.resumePages == 64)
  }

  @Test func kaleidoscopeNeverFetchesHolesAndPrefetchesFileOrder() {
    let k = KaleidoscopePolicy(map: map, freeIsHole: true)
    let m = sim.run(policy: k, frameCount: 64, trace: trace([0, 9, 50, 23, 22, 21, 45]))
    // Resume: 7 kernel/page-table frames; the miss on 23 brings 22 and 21 (file order).
    #expect(m.resumePages == 7)
    #expect(m.demandFaults == 1)
    #expect(m.holes == 29 && m.holesTouched == 3)
    #expect(m.pagesFetched == 7 + 8)
    #expect(m.waste == m.pagesFetched - 4)  // touched fetched frames: 0, 23, 22, 21
    #expect(m.footprintPages == m.pagesFetched + 3)
  }

  @Test func backgroundWorkHappensInIdleTimeAndBacksOffAfterMisses() {
    // Working set 30..33 in the background; the trace idles 1000 µs before touching it.
    let w = WorkingSetPolicy(firstTouch: [30, 31, 32, 33], frameCount: 64)
    let idle = [Access(frame: 1, write: false, timeMicros: 0), Access(frame: 30, write: false, timeMicros: 1000),
      Access(frame: 33, write: false, timeMicros: 1001)]
    let m = sim.run(policy: w, frameCount: 64, trace: idle)
    #expect(m.demandFaults == 1)  // only frame 1; 30..33 arrived in the idle time
    #expect(m.pagesPrefetched == 4 && m.waste == 2)
    // Without idle time, the working set is not there yet: misses.
    let busy = sim.run(policy: w, frameCount: 64, trace: trace([30, 33]))
    #expect(busy.demandFaults >= 1)
  }

  @Test func aBrokenPolicyThatFetchesEverythingShowsAsWaste() {
    // The waste metric is real: a policy fetching all frames on a miss wastes the untouched ones.
    struct Greedy: ClonePolicy {
      var name: String { "greedy" }
      func miss(frame: UInt64) -> PolicyPlan { PolicyPlan(now: [FrameRange(start: 0, count: 64)]) }
    }
    let m = sim.run(policy: Greedy(), frameCount: 64, trace: trace([5]))
    #expect(m.demandFaults == 1 && m.pagesFetched == 64 && m.waste == 63 && m.pagesPrefetched == 63)
  }

  @Test func framesOutsideTheGuestAreIgnored() {
    let m = sim.run(policy: OnDemandPolicy(), frameCount: 64, trace: trace([64, 1 << 40]))
    #expect(m.accesses == 0 && m.demandFaults == 0)
  }
}
