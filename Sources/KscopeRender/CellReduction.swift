import KscopeCore

/// How a cell holding several frames chooses its pixels.
public enum CellReduction: String, CaseIterable, Sendable {
  /// The most frequent color of the cell's frames (ties: the color rarer in the whole map, so
  /// scattered small classes such as page tables are not always swallowed by their neighbours).
  /// The default: every pixel is then a legend color, so the picture can be read against the
  /// legend exactly; the price is that a class below half of every cell it touches can vanish.
  case dominant
  /// The mean of the cell's frame colors, weighted by count: nothing vanishes, but a mixed
  /// cell shows an in-between hue that is in no legend (red and green frames make a brown).
  case blend
}

/// What one cell of the curve shows.
public enum CellPaint: Sendable, Equatable {
  /// Past the last frame.
  case background
  /// One frame color (drawn with `Palette.pixel`, so unknown is checkered).
  case color(Color)
  /// A blended color.
  case rgb(RGB)
}

/// Reduces a cell's frames to one paint. Keeps a small counting buffer, hence a value that is
/// reused from cell to cell.
public struct CellReducer {
  let entries: [UInt16]
  let mode: CellReduction
  /// For each color code, its rank for breaking ties (lower wins): rarer colors first.
  let tieRank: [Int]
  var counts: [Int]

  /// `totals` are frames per color code over the whole map (`ColorMap.totals`).
  public init(entries: [UInt16], totals: [UInt64], mode: CellReduction) {
    self.entries = entries
    self.mode = mode
    let colors = Color.allCases.sorted {
      let a = totals.count > Int($0.rawValue) ? totals[Int($0.rawValue)] : 0
      let b = totals.count > Int($1.rawValue) ? totals[Int($1.rawValue)] : 0
      return a != b ? a < b : $0 < $1
    }
    var rank = [Int](repeating: 0, count: Color.allCases.count)
    for (r, c) in colors.enumerated() { rank[Int(c.rawValue)] = r }
    tieRank = rank
    counts = [Int](repeating: 0, count: Color.allCases.count)
  }

  /// The paint of the frames `range` (consecutive, inside the map; empty means background).
  public mutating func paint(_ range: Range<UInt64>) -> CellPaint {
    if range.isEmpty { return .background }
    if range.count == 1 {
      return .color(FrameEntry(rawValue: entries[Int(range.lowerBound)]).color)
    }
    for c in 0..<counts.count { counts[c] = 0 }
    for i in Int(range.lowerBound)..<Int(range.upperBound) {
      counts[Int(FrameEntry(rawValue: entries[i]).color.rawValue)] += 1
    }
    switch mode {
    case .dominant:
      var best = 0
      for c in 1..<counts.count
      where counts[c] > counts[best] || (counts[c] == counts[best] && tieRank[c] < tieRank[best]) {
        best = c
      }
      return .color(Color(rawValue: UInt8(best)) ?? .unknown)
    case .blend:
      var r = 0
      var g = 0
      var b = 0
      var single: Color? = nil
      var kinds = 0
      for c in Color.allCases where counts[Int(c.rawValue)] > 0 {
        let n = counts[Int(c.rawValue)]
        let v = Palette.rgb(c)
        r += n * Int(v.r)
        g += n * Int(v.g)
        b += n * Int(v.b)
        single = c
        kinds += 1
      }
      // A cell of one color keeps that color's own drawing (the unknown checkerboard too).
      if kinds == 1, let single { return .color(single) }
      let n = range.count
      func mean(_ sum: Int) -> UInt8 { UInt8((sum + n / 2) / n) }
      return .rgb(RGB(mean(r), mean(g), mean(b)))
    }
  }
}
