import KscopeCore
import KscopeRender
import Testing

func entries(_ colors: [Color]) -> [UInt16] { colors.map { FrameEntry($0).rawValue } }

func totals(_ colors: [Color]) -> [UInt64] {
  var t = [UInt64](repeating: 0, count: Color.codeSpace)
  for c in colors { t[Int(c.rawValue)] += 1 }
  return t
}

@Test func dominantColorWins() {
  let cs: [Color] = [.free, .pageCache, .pageCache, .userData]
  var r = CellReducer(entries: entries(cs), totals: totals(cs), mode: .dominant)
  #expect(r.paint(0..<4) == .color(.pageCache))
  #expect(r.paint(3..<4) == .color(.userData))
  #expect(r.paint(2..<2) == .background)
}

@Test func dominantTiesGoToTheRarerColor() {
  // page-table and free tie in the cell; page-table is rarer in the whole map.
  let cs: [Color] = [.free, .pageTable, .free, .pageTable] + Array(repeating: .free, count: 8)
  var r = CellReducer(entries: entries(cs), totals: totals(cs), mode: .dominant)
  #expect(r.paint(0..<4) == .color(.pageTable))
  // Flags do not change the color.
  let flagged = [
    FrameEntry(.userData, [.dirty, .mapped]).rawValue, FrameEntry(.userData).rawValue,
  ]
  var f = CellReducer(entries: flagged, totals: totals([.userData, .userData]), mode: .dominant)
  #expect(f.paint(0..<2) == .color(.userData))
}

@Test func blendIsTheWeightedMean() {
  let cs: [Color] = [.kernelCode, .kernelCode, .kernelCode, .pageCache]
  var r = CellReducer(entries: entries(cs), totals: totals(cs), mode: .blend)
  let a = Palette.rgb(.kernelCode)
  let b = Palette.rgb(.pageCache)
  func mean(_ x: UInt8, _ y: UInt8) -> UInt8 { UInt8((3 * Int(x) + Int(y) + 2) / 4) }
  #expect(r.paint(0..<4) == .rgb(RGB(mean(a.r, b.r), mean(a.g, b.g), mean(a.b, b.b))))
  // A cell of one color keeps it (unknown stays checkered).
  #expect(r.paint(0..<3) == .color(.kernelCode))
  let u: [Color] = [.unknown, .unknown]
  var ru = CellReducer(entries: entries(u), totals: totals(u), mode: .blend)
  #expect(ru.paint(0..<2) == .color(.unknown))
}

@Test func paletteHuesAreDistinct() {
  let hues = Color.allCases.map(Palette.rgb)
  #expect(Set(hues).count == Color.allCases.count)
  #expect(!hues.contains(Palette.background))
  // Unknown is a checkerboard: its two squares alternate every `s` pixels.
  let s = 4
  func at(_ c: Color, _ x: Int, _ y: Int) -> RGB { Palette.pixel(c, x: x, y: y, checker: s) }
  #expect(at(.unknown, 0, 0) != at(.unknown, s, 0))
  #expect(at(.unknown, 0, 0) == at(.unknown, s - 1, s - 1))
  #expect(at(.unknown, 0, 0) == at(.unknown, s, s))
  #expect(at(.free, 0, 0) == at(.free, s, 0))
  // Every pair of hues is clearly apart (sum of channel differences).
  for (i, a) in hues.enumerated() {
    for b in hues[(i + 1)...] {
      let d = abs(Int(a.r) - Int(b.r)) + abs(Int(a.g) - Int(b.g)) + abs(Int(a.b) - Int(b.b))
      #expect(d >= 60, "\(a) and \(b) are too close")
    }
  }
}
