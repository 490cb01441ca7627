/// What `kscope map query` asks: frames in a range, of a color, caching a file (an inode, on
/// a device). All optional; given together they intersect.
public struct ColorMapQuery: Sendable, Equatable {
  public var range: Range<UInt64>?
  public var color: Color?
  public var inode: UInt64?
  /// The file's device, in the map's encoding (`FileIdentity.device`).
  public var device: UInt32?
  public init(range: Range<UInt64>? = nil, color: Color? = nil, inode: UInt64? = nil, device: UInt32? = nil) {
    self.range = range
    self.color = color
    self.inode = inode
    self.device = device
  }
}

/// A run of matching frames with uniform color, attributes and flags.
public struct QueryRun: Sendable, Hashable {
  public var start: UInt64
  public var count: UInt64
  public var color: Color
  /// The attributes over exactly this run (file index adjusted to `start`), if any.
  public var attributes: AttributeExtent?
  /// The flags of every frame of the run (runs are split where flags change).
  public var flags: PageFlags?
}

/// The answer to a query: runs in frame order, and how many there were before `limit`.
public struct QueryResult: Sendable {
  public var runs: [QueryRun]
  public var totalRuns: Int
  public var totalFrames: UInt64
  public var truncated: Bool { runs.count < totalRuns }
}

extension ColorMap {
  /// Answers a query in time proportional to the runs it touches (binary search on the run and
  /// extent indices, the per-color index for color queries); `limit` caps the runs returned
  /// (0 = no cap) but not the totals.
  public func query(_ q: ColorMapQuery, limit: Int = 0) -> QueryResult {
    let lo = q.range?.lowerBound ?? 0
    let hi = min(q.range?.upperBound ?? frameCount, frameCount)
    var result = QueryResult(runs: [], totalRuns: 0, totalFrames: 0)
    guard lo < hi else { return result }

    func emit(_ r: QueryRun) {
      result.totalRuns += 1
      result.totalFrames += r.count
      if limit == 0 || result.runs.count < limit { result.runs.append(r) }
    }

    if q.inode != nil || q.device != nil {
      // Walk the extents of that file (or device), then split each by color.
      for e in extents
      where e.end > lo && e.start < hi && (q.inode == nil || e.file?.inode == q.inode)
        && (q.device == nil || e.file?.device == q.device)
      {
        let part = e.clipped(lo, hi)
        var k = firstRun(endingAfter: part.start)
        while k < runs.count && runs[k].start < part.end {
          let r = runs[k]
          k += 1
          if let c = q.color, r.color != c { continue }
          let s = max(r.start, part.start)
          let t = min(r.end, part.end)
          emitByFlags(s, t, r.color, part, emit)
        }
      }
      return result
    }

    // Candidate runs: all runs, or one color's, starting at the first that reaches `lo`.
    let candidates: [UInt32]? = q.color.map { colorRuns[Int($0.rawValue)] }
    var k: Int
    if let list = candidates {
      var a = 0
      var b = list.count
      while a < b {
        let m = (a + b) / 2
        if runs[Int(list[m])].end <= lo { a = m + 1 } else { b = m }
      }
      k = a
    } else {
      k = firstRun(endingAfter: lo)
    }
    let n = candidates?.count ?? runs.count
    while k < n {
      let r = runs[Int(candidates?[k] ?? UInt32(k))]
      k += 1
      if r.start >= hi { break }
      splitByExtents(max(r.start, lo), min(r.end, hi), r.color, emit)
    }
    return result
  }

  /// Emits `s..<t` (one color, inside one extent or none) in pieces with uniform flags.
  private func emitByFlags(
    _ s: UInt64, _ t: UInt64, _ c: Color, _ e: AttributeExtent?, _ emit: (QueryRun) -> Void
  ) {
    var a = Int(s)
    let end = Int(t)
    while a < end {
      let flags = entries[a] & ~0x1F
      var b = a + 1
      while b < end && entries[b] & ~0x1F == flags { b += 1 }
      let (u, v) = (UInt64(a), UInt64(b))
      emit(
        QueryRun(
          start: u, count: v - u, color: c, attributes: e?.clipped(u, v),
          flags: FrameEntry(rawValue: entries[a]).flags))
      a = b
    }
  }

  /// Emits `s..<t` (one color) in pieces with uniform attributes.
  private func splitByExtents(
    _ s: UInt64, _ t: UInt64, _ c: Color, _ emit: (QueryRun) -> Void
  ) {
    var pos = s
    var k = firstExtent(endingAfter: s)
    while pos < t {
      if k < extents.count && extents[k].start < t {
        let e = extents[k]
        if e.start > pos {
          emitByFlags(pos, e.start, c, nil, emit)
          pos = e.start
        }
        let end = min(e.end, t)
        emitByFlags(pos, end, c, e, emit)
        pos = end
        k += 1
      } else {
        emitByFlags(pos, t, c, nil, emit)
        pos = t
      }
    }
  }
}

/// A run of frames whose color differs between two maps.
public struct ColorChange: Sendable, Hashable {
  public var start: UInt64
  public var count: UInt64
  /// nil where the frame exists only in the other map.
  public var from: Color?
  public var to: Color?
}

public struct ColorPair: Sendable, Hashable {
  public var from: Color?
  public var to: Color?
}

public struct ColorMapDiff: Sendable {
  public var changes: [ColorChange]
  public var totalChanges: Int
  public var changedFrames: UInt64
  /// Frames per (from, to) pair of colors; nil = the frame is absent from that map.
  public var matrix: [ColorPair: UInt64]
  public var truncated: Bool { changes.count < totalChanges }
}

extension ColorMap {
  /// Which frames changed color from `self` (say, a parent) to `other` (its clone). Flags and
  /// attributes are not compared. Frames beyond the shorter map count as added or removed.
  public func diff(to other: ColorMap, limit: Int = 0) -> ColorMapDiff {
    var d = ColorMapDiff(changes: [], totalChanges: 0, changedFrames: 0, matrix: [:])
    let absent = Color.codeSpace
    let n = max(entries.count, other.entries.count)
    var i = 0
    func code(_ m: ColorMap, _ i: Int) -> Int {
      i < m.entries.count ? Int(m.entries[i] & 0x1F) : absent
    }
    while i < n {
      let a = code(self, i)
      let b = code(other, i)
      if a == b {
        i += 1
        continue
      }
      var j = i + 1
      while j < n && code(self, j) == a && code(other, j) == b { j += 1 }
      let count = UInt64(j - i)
      d.totalChanges += 1
      d.changedFrames += count
      let from = a == absent ? nil : Color(rawValue: UInt8(a)) ?? .unknown
      let to = b == absent ? nil : Color(rawValue: UInt8(b)) ?? .unknown
      d.matrix[ColorPair(from: from, to: to), default: 0] += count
      if limit == 0 || d.changes.count < limit {
        d.changes.append(ColorChange(start: UInt64(i), count: count, from: from, to: to))
      }
      i = j
    }
    return d
  }
}
