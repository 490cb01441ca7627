import Histogram

/// Latency percentiles of served misses, in µs (recorded in ns with HdrHistogram, 3 digits).
public struct LatencySummary: Equatable, Sendable {
  public var count: UInt64
  public var p50: Double
  public var p99: Double
  public var max: Double
  public init(count: UInt64 = 0, p50: Double = 0, p99: Double = 0, max: Double = 0) {
    self.count = count
    self.p50 = p50
    self.p99 = p99
    self.max = max
  }
}

/// Records latencies (ns) up to one minute.
public struct LatencyRecorder: Sendable {
  var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
  public init() {}
  public mutating func record(nanoseconds: UInt64) {
    histogram.record(Swift.min(nanoseconds, 60_000_000_000))
  }
  public mutating func merge(_ other: LatencyRecorder) {
    histogram.add(other.histogram)
  }
  public var summary: LatencySummary {
    guard histogram.totalCount > 0 else { return LatencySummary() }
    return LatencySummary(
      count: histogram.totalCount,
      p50: Double(histogram.valueAtPercentile(50)) / 1000,
      p99: Double(histogram.valueAtPercentile(99)) / 1000,
      max: Double(histogram.max) / 1000)
  }
}

/// What one clone run cost under a policy: the metrics `clone simulate` and `clone replay` report.
public struct CloneMetrics: Equatable, Sendable {
  public var policy: String
  /// Accesses in the trace, and distinct frames they touched.
  public var accesses: UInt64 = 0
  public var touchedPages: UInt64 = 0
  /// Misses that blocked the clone, and their service latency.
  public var demandFaults: UInt64 = 0
  public var faultLatency = LatencySummary()
  /// Frames fetched in all, and of those the ones fetched ahead of a miss on them (before resume,
  /// in the background, or as a miss's batch).
  public var pagesFetched: UInt64 = 0
  public var pagesPrefetched: UInt64 = 0
  /// Fetched frames that no clone touched by the end of the run.
  public var waste: UInt64 = 0
  /// Frames left as holes (never fetched; zeros on first touch), and the touched ones of those.
  public var holes: UInt64 = 0
  public var holesTouched: UInt64 = 0
  /// Frames materialised: fetched frames plus touched holes.
  public var footprintPages: UInt64 = 0
  public var bytesMoved: UInt64 = 0
  /// Frames fetched before the clone resumed, and how long that took (µs).
  public var resumePages: UInt64 = 0
  public var resumeMicros: Double = 0
  /// µs from the clone's start until its 1st, 10th, 100th, 1000th miss had been served.
  public var timeToMisses: [(misses: UInt64, micros: Double)] = []
  /// µs until the last access was served.
  public var completionMicros: Double = 0

  public init(policy: String) { self.policy = policy }

  public static func == (a: CloneMetrics, b: CloneMetrics) -> Bool {
    a.policy == b.policy && a.accesses == b.accesses && a.demandFaults == b.demandFaults
      && a.pagesFetched == b.pagesFetched && a.pagesPrefetched == b.pagesPrefetched
      && a.waste == b.waste && a.holes == b.holes && a.footprintPages == b.footprintPages
      && a.faultLatency == b.faultLatency
  }
}
