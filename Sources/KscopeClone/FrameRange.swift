/// A run of consecutive guest page frames: what a policy asks the engine to fetch.
public struct FrameRange: Hashable, Sendable, CustomStringConvertible {
  public var start: UInt64
  public var count: UInt64
  public init(start: UInt64, count: UInt64) {
    self.start = start
    self.count = count
  }
  public var end: UInt64 { start + count }
  public var description: String { count == 1 ? "\(start)" : "\(start)+\(count)" }

  /// The frames `lo..<hi` clipped to `0..<limit`, nil when nothing is left.
  static func clipped(_ lo: UInt64, _ hi: UInt64, limit: UInt64) -> FrameRange? {
    let l = min(lo, limit)
    let h = min(hi, limit)
    return h > l ? FrameRange(start: l, count: h - l) : nil
  }
}

extension Array where Element == FrameRange {
  /// Sorted, with touching and overlapping ranges merged: the large reads a fetch turns into.
  public func coalesced() -> [FrameRange] {
    var out: [FrameRange] = []
    for r in sorted(by: { $0.start < $1.start }) where r.count > 0 {
      if let last = out.last, r.start <= last.end {
        out[out.count - 1].count = Swift.max(last.end, r.end) - last.start
      } else {
        out.append(r)
      }
    }
    return out
  }

  public var frameTotal: UInt64 { reduce(0) { $0 + $1.count } }
}

/// Ranges of consecutive frames from a list of single frames (kept in the list's order).
func ranges<S: Sequence>(of frames: S) -> [FrameRange] where S.Element == UInt64 {
  var out: [FrameRange] = []
  for f in frames {
    if let last = out.last, last.end == f {
      out[out.count - 1].count += 1
    } else {
      out.append(FrameRange(start: f, count: 1))
    }
  }
  return out
}
