import KscopeCore
import KscopeRender
import Testing

@Test func gridSquaresAreTheSmallestThatAreWideEnough() throws {
  // 24 GiB at 1024 pixels: 16 frames per pixel, 1 GiB squares of 128 pixels.
  let big = try CurveLayout.fitting(frames: 6_553_600, side: 1024)
  let g = try #require(AddressGrid.choose(for: big, minPixels: 128))
  #expect(g.framesPerSquare == 262_144)
  #expect(g.squarePixels == 128)
  #expect(g.squareCount(frames: 6_553_600) == 25)
  // Square 1 (1 GiB) is below square 0, square 3 right of it: the curve's quadrant order.
  #expect(g.origin(ofSquare: 1, curve: big) == (0, 128))
  #expect(g.origin(ofSquare: 3, curve: big) == (128, 0))
  // A curve with fewer than four squares of that size has no grid.
  #expect(
    AddressGrid.choose(for: try CurveLayout.fitting(frames: 64, side: 100), minPixels: 128) == nil)
  #expect(NumberText.compactBytes(0) == "0")
  #expect(NumberText.compactBytes(1 << 30) == "1G")
  #expect(NumberText.compactBytes(3 << 29) == "1536M")
  #expect(NumberText.compactBytes(4096 * 3) == "12K")
}

@Test func gridLinesAndLabelsAreDrawnOverTheCurve() throws {
  // 4096 frames at 256 pixels: 4 x 4 pixels per frame; squares of 1024 frames, 128 pixels.
  let map = craftedMap(frames: 4096) { _ in .pageCache }
  let plain = try MapPicture.render(map, sizing: .fit(side: 256))
  #expect(plain.grid == nil)
  let gridded = try MapPicture.render(map, sizing: .fit(side: 256), grid: true)
  let g = try #require(gridded.grid)
  #expect(g.squarePixels == 128)
  let d = try decodePNG(try PNG.encode(gridded.canvas))
  let a = gridded.curveArea
  // Square 1 starts at (0, 128): a grid line along its top edge, away from its label.
  #expect(d.pixel(x: a.x + 100, y: a.y + 128) == Palette.grid)
  #expect(d.pixel(x: a.x + 100, y: a.y + 129) == Palette.rgb(.pageCache))
  #expect(d.pixel(x: a.x, y: a.y + 200) == Palette.grid)
  // Its label "4M" (1024 frames of 4 KiB) sits on a background box in its top-left corner.
  var ink = 0
  var box = 0
  for y in (a.y + 129)..<(a.y + 129 + 20) {
    for x in (a.x + 1)..<(a.x + 1 + 26) {
      let p = d.pixel(x: x, y: y)
      if p == Palette.text { ink += 1 }
      if p == Palette.background { box += 1 }
    }
  }
  #expect(ink > 20 && box > 100)
  // Without --grid the same pixels are the map's.
  let p = try decodePNG(try PNG.encode(plain.canvas))
  #expect(p.pixel(x: a.x + 100, y: a.y + 128) == Palette.rgb(.pageCache))
  #expect(p.pixel(x: a.x + 5, y: a.y + 133) == Palette.rgb(.pageCache))
}
