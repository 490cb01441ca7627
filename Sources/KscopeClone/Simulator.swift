/// A link between a clone's host and its page source, for the simulator: each request costs a
/// round trip plus its bytes at the link's bandwidth; each miss also costs the userfaultfd round
/// trip (fault -> handler -> wake), measured here at about 8-10 µs.
public struct LinkModel: Equatable, Sendable {
  public var name: String
  public var roundTripMicros: Double
  public var bytesPerMicro: Double
  public var faultMicros: Double
  public init(name: String, roundTripMicros: Double, bytesPerMicro: Double, faultMicros: Double) {
    self.name = name
    self.roundTripMicros = roundTripMicros
    self.bytesPerMicro = bytesPerMicro
    self.faultMicros = faultMicros
  }
  /// A local snapshot on tmpfs: pread + pwrite at about 1.7 GB/s, 1 µs per request.
  public static let local = LinkModel(name: "local", roundTripMicros: 1, bytesPerMicro: 1700, faultMicros: 9)
  /// An emulated 1 Gbit/s link with 0.2 ms round trips (NBD).
  public static let gigabit = LinkModel(name: "1gbit-0.2ms", roundTripMicros: 200, bytesPerMicro: 125, faultMicros: 9)

  public static func named(_ s: String) -> LinkModel? {
    switch s {
    case "local": .local
    case "1gbit", "1gbit-0.2ms": .gigabit
    default: nil
    }
  }

  /// µs to fetch `pages` frames in one batch (requests pipelined: one round trip).
  func cost(pages: UInt64, pageSize: UInt64) -> Double {
    pages == 0 ? 0 : roundTripMicros + Double(pages * pageSize) / bytesPerMicro
  }
}

/// Runs a policy over an access trace without syscalls: a model of the engine (what is present
/// in the host cache, what a miss costs on the link, background fetch in idle time, backing off
/// after misses) so that policies can be compared on many traces in seconds.
public struct Simulator {
  public var link: LinkModel
  public var pageSize: UInt64 = 4096
  /// Time between accesses that carry no timestamp (µs).
  public var thinkMicros: Double = 1
  public init(link: LinkModel) { self.link = link }

  public func run(policy: any ClonePolicy, frameCount: UInt64, trace: [Access]) -> CloneMetrics {
    var m = CloneMetrics(policy: policy.name)
    var present = Bitmap(count: frameCount)
    var hole = Bitmap(count: frameCount)
    var touched = Bitmap(count: frameCount)
    for r in policy.holes() { hole.set(r, limit: frameCount) }
    m.holes = hole.population

    var now = 0.0
    var latency = LatencyRecorder()
    // Fetches the frames of `ranges` not yet present and not holes; returns how many.
    func fetch(_ ranges: [FrameRange]) -> UInt64 {
      var n: UInt64 = 0
      for r in ranges {
        var f = r.start
        while f < min(r.end, frameCount) {
          if !present[f] && !hole[f] {
            present.insert(f)
            n += 1
          }
          f += 1
        }
      }
      return n
    }

    // Before resume: blocking.
    let first = fetch(policy.beforeResume())
    m.resumePages = first
    m.pagesFetched += first
    m.pagesPrefetched += first
    now += link.cost(pages: first, pageSize: pageSize)
    m.resumeMicros = now

    var queue = Deque(policy.backgroundAtStart())
    var backoffUntil = now
    var lastTraceTime: Double?
    let milestones: Set<UInt64> = [1, 10, 100, 1000]

    // Background fetch in the idle time before `deadline`, one batch of up to 64 frames at a time.
    func background(until deadline: Double) {
      var t = max(now, backoffUntil)
      while t < deadline, var r = queue.popFirst() {
        // Only a batch that completes before the clone's next access counts as fetched.
        let fits = (deadline - t - link.roundTripMicros) * link.bytesPerMicro / Double(pageSize)
        let take = fits >= 1 ? min(r.count, 64, UInt64(fits)) : 0
        if take == 0 {
          queue.pushFirst(r)
          break
        }
        let batch = FrameRange(start: r.start, count: take)
        if take < r.count {
          r.start += take
          r.count -= take
          queue.pushFirst(r)
        }
        let n = fetch([batch])
        m.pagesFetched += n
        m.pagesPrefetched += n
        t += link.cost(pages: n, pageSize: pageSize)
      }
    }

    for a in trace where a.frame < frameCount {
      m.accesses += 1
      // When the clone makes this access: its timestamp (relative to the trace's own start),
      // or right after the previous one.
      var at = now + thinkMicros
      if let t = a.timeMicros {
        let rel = Double(t)
        if let last = lastTraceTime { at = max(now, now + (rel - last)) }
        lastTraceTime = rel
      }
      background(until: at)
      now = max(now, at)
      touched.insert(a.frame)
      if hole[a.frame] || present[a.frame] { continue }
      // A demand miss: the policy's batch now, its read-ahead queued before older work.
      let plan = policy.miss(frame: a.frame)
      var n = fetch(plan.now)
      if !present[a.frame] {
        present.insert(a.frame)  // a policy that forgot the faulting frame still gets it
        n += 1
      }
      let cost = link.faultMicros + link.cost(pages: n, pageSize: pageSize)
      now += cost
      latency.record(nanoseconds: UInt64(cost * 1000))
      m.demandFaults += 1
      m.pagesFetched += n
      m.pagesPrefetched += n - 1
      for r in plan.later.reversed() { queue.pushFirst(r) }
      backoffUntil = now + Double(policy.backoffMicros)
      if milestones.contains(m.demandFaults) { m.timeToMisses.append((m.demandFaults, now)) }
    }
    m.completionMicros = now
    m.faultLatency = latency.summary
    m.touchedPages = touched.population
    m.waste = present.population - present.intersectionCount(touched)
    m.holesTouched = hole.intersectionCount(touched)
    m.footprintPages = present.population + m.holesTouched
    m.bytesMoved = m.pagesFetched * pageSize
    return m
  }
}

/// One bit per frame.
public struct Bitmap: Sendable {
  var words: [UInt64]
  public let count: UInt64
  public init(count: UInt64) {
    self.count = count
    words = [UInt64](repeating: 0, count: Int((count + 63) / 64))
  }
  public subscript(_ i: UInt64) -> Bool {
    i < count && words[Int(i >> 6)] & (1 << (i & 63)) != 0
  }
  public mutating func insert(_ i: UInt64) {
    guard i < count else { return }
    words[Int(i >> 6)] |= 1 << (i & 63)
  }
  public mutating func remove(_ i: UInt64) {
    guard i < count else { return }
    words[Int(i >> 6)] &= ~(1 << (i & 63))
  }
  public mutating func set(_ r: FrameRange, limit: UInt64) {
    var f = r.start
    while f < min(r.end, limit) {
      insert(f)
      f += 1
    }
  }
  public var population: UInt64 { words.reduce(0) { $0 + UInt64($1.nonzeroBitCount) } }
  public func intersectionCount(_ other: Bitmap) -> UInt64 {
    var n: UInt64 = 0
    for i in 0..<min(words.count, other.words.count) {
      n += UInt64((words[i] & other.words[i]).nonzeroBitCount)
    }
    return n
  }
}

/// A small double-ended queue of ranges (front pushes are rare: a miss's read-ahead).
struct Deque {
  var items: [FrameRange]
  var head = 0
  init(_ items: [FrameRange]) { self.items = items }
  mutating func popFirst() -> FrameRange? {
    guard head < items.count else { return nil }
    defer { head += 1 }
    return items[head]
  }
  mutating func pushFirst(_ r: FrameRange) {
    if head > 0 {
      head -= 1
      items[head] = r
    } else {
      items.insert(r, at: 0)
    }
  }
}
