/// `kaleidoscope+working-set`: the colour policy's holes, resume set and miss answers, with a
/// recorded working set (minus holes) fetched in the background from the start.
public struct KaleidoscopeWorkingSetPolicy: ClonePolicy {
  let colors: KaleidoscopePolicy
  let workingSet: WorkingSetPolicy
  public var name: String { "kaleidoscope+working-set" }
  public var backoffMicros: UInt64 { colors.backoffMicros }
  public func holes() -> [FrameRange] { colors.holes() }
  public func beforeResume() -> [FrameRange] { colors.beforeResume() }
  public func backgroundAtStart() -> [FrameRange] {
    let holes = colors.holes()
    return workingSet.set.flatMap { subtract(holes, from: $0) }
  }
  public func miss(frame: UInt64) -> PolicyPlan { colors.miss(frame: frame) }
}

/// `range` minus sorted, non-overlapping `holes`.
func subtract(_ holes: [FrameRange], from range: FrameRange) -> [FrameRange] {
  var out: [FrameRange] = []
  var cursor = range.start
  // First hole that ends after the range starts (binary search: holes are sorted).
  var lo = 0
  var hi = holes.count
  while lo < hi {
    let mid = (lo + hi) / 2
    if holes[mid].end <= range.start { lo = mid + 1 } else { hi = mid }
  }
  var k = lo
  while k < holes.count && holes[k].start < range.end {
    if holes[k].start > cursor { out.append(FrameRange(start: cursor, count: holes[k].start - cursor)) }
    cursor = max(cursor, holes[k].end)
    k += 1
  }
  if cursor < range.end { out.append(FrameRange(start: cursor, count: range.end - cursor)) }
  return out
}
