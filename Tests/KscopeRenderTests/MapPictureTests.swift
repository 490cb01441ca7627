import KscopeCore
import Testing

@testable import KscopeRender

/// A map whose frame i has color `colorOf(i)`.
func craftedMap(frames: Int, release: String? = "6.1.0-test", colorOf: (Int) -> Color) -> ColorMap {
  ColorMap(
    header: ColorMapHeader(kernelRelease: release),
    entries: (0..<frames).map { FrameEntry(colorOf($0)).rawValue })
}

/// Cycles through all twelve colors, in an order that is not the codes'.
func cyclic(_ i: Int) -> Color { Color(rawValue: UInt8((i * 5 + i / 12) % 12))! }

@Test func eachFrameIsAtItsHilbertPosition() throws {
  let map = craftedMap(frames: 200, colorOf: cyclic)
  let picture = try MapPicture.render(map, sizing: .fit(side: 256))
  let curve = picture.curve
  #expect(curve.frameOrder == 4)
  #expect(curve.cellPixels == 16)
  #expect(picture.framesPerPixel == 1)
  let d = try decodePNG(try PNG.encode(picture.canvas))
  #expect(d.width == picture.canvas.width && d.height == picture.canvas.height)
  let area = picture.curveArea
  for i in 0..<256 {
    let (cx, cy) = Hilbert.cell(of: UInt64(i), order: curve.frameOrder)
    // Every pixel of the frame's 16 x 16 block.
    for dy in 0..<16 {
      for dx in 0..<16 {
        let x = area.x + cx * 16 + dx
        let y = area.y + cy * 16 + dy
        let want =
          i < 200
          ? Palette.pixel(cyclic(i), x: x, y: y, checker: picture.checkerSide) : Palette.background
        if d.pixel(x: x, y: y) != want {
          Issue.record("frame \(i) at (\(x), \(y)): \(d.pixel(x: x, y: y)), want \(want)")
          return
        }
      }
    }
  }
  // The outline sits just outside the curve.
  #expect(d.pixel(x: area.x - 1, y: area.y) == Palette.outline)
  #expect(d.pixel(x: area.x + area.width, y: area.y + area.height - 1) == Palette.outline)
}

@Test func groupedFramesShowTheirDominantColor() throws {
  // 4^6 frames on a 16-pixel curve: 16 frames per pixel. In group g, frames are page cache
  // except the first 5 (user data) when g is odd; in group 7 all 16 are kernel code.
  let map = craftedMap(frames: 4096) { i in
    let g = i / 16
    if g == 7 { return .kernelCode }
    return g % 2 == 1 && i % 16 < 5 ? .userData : .pageCache
  }
  let picture = try MapPicture.render(map, sizing: .fit(side: 16))
  #expect(picture.framesPerPixel == 16)
  #expect(picture.curve.side == 16)
  let d = try decodePNG(try PNG.encode(picture.canvas))
  let (x7, y7) = Hilbert.cell(of: 7, order: 4)
  #expect(
    d.pixel(x: picture.curveArea.x + x7, y: picture.curveArea.y + y7) == Palette.rgb(.kernelCode))
  let (x9, y9) = Hilbert.cell(of: 9, order: 4)
  #expect(
    d.pixel(x: picture.curveArea.x + x9, y: picture.curveArea.y + y9) == Palette.rgb(.pageCache))

  let blended = try MapPicture.render(map, sizing: .fit(side: 16), reduction: .blend)
  let b = try decodePNG(try PNG.encode(blended.canvas))
  let px = b.pixel(x: blended.curveArea.x + x9, y: blended.curveArea.y + y9)
  let u = Palette.rgb(.userData)
  let p = Palette.rgb(.pageCache)
  func mix(_ a: UInt8, _ b: UInt8) -> UInt8 { UInt8((5 * Int(a) + 11 * Int(b) + 8) / 16) }
  let want = RGB(mix(u.r, p.r), mix(u.g, p.g), mix(u.b, p.b))
  #expect(px == want)
}

@Test func legendHasASwatchForEachPresentColor() throws {
  let present: [Color] = [.free, .pageCache, .kernelCode, .unknown, .pageTable]
  let map = craftedMap(frames: 1000) { present[$0 % present.count] }
  let picture = try MapPicture.render(map)
  let d = try decodePNG(try PNG.encode(picture.canvas))
  #expect(Set(picture.legend.map(\.color)) == Set(present))
  #expect(picture.legend.map(\.color) == MapPicture.legendOrder.filter(present.contains))
  let curveRight = picture.curveArea.x + picture.curveArea.width
  for entry in picture.legend {
    #expect(entry.pages == 200)
    let s = entry.swatch
    #expect(s.x > curveRight, "the legend is beside the curve")
    #expect(s.width >= 8 && s.height >= 8)
    // The swatch's inside is the color's drawing, pixel for pixel (relative to the swatch).
    for y in 0..<s.height {
      for x in 0..<s.width {
        #expect(
          d.pixel(x: s.x + x, y: s.y + y)
            == Palette.pixel(entry.color, x: x, y: y, checker: picture.checkerSide))
      }
    }
  }
  // And nowhere right of the curve is there an absent color's hue.
  let absent = Set(
    Color.allCases.filter { !present.contains($0) && $0 != .unknown }.map(Palette.rgb))
  for y in 0..<d.height {
    for x in curveRight..<d.width where absent.contains(d.pixel(x: x, y: y)) {
      Issue.record("absent color at (\(x), \(y))")
      return
    }
  }
}

@Test func legendTextHasTotals() {
  let map = craftedMap(frames: 1000) { $0 < 250 ? .pageCache : .free }
  let rows = MapPicture.legendTable(map).map { $0.text }
  #expect(rows.count == 4)
  #expect(rows[0].hasPrefix("color"))
  #expect(rows[1].hasPrefix("free") && rows[1].hasSuffix("75.00%") && rows[1].contains("750"))
  #expect(rows[2].hasPrefix("page-cache") && rows[2].hasSuffix("25.00%") && rows[2].contains("1.0"))
  #expect(rows[3].hasPrefix("total") && rows[3].contains("1,000") && rows[3].hasSuffix("100.00%"))
  // Columns line up: every row is as long as the header.
  #expect(Set(rows.map { $0.count }).count == 1)
}

@Test func emptyAndOneFrameMapsRender() throws {
  for n in [0, 1, 2] {
    let picture = try MapPicture.render(craftedMap(frames: n, release: nil) { _ in .free })
    let d = try decodePNG(try PNG.encode(picture.canvas))
    #expect(d.width > 0 && d.height > 0)
  }
}

@Test func fourMebiFrameMapRenders() throws {
  // A 16 GiB guest: 4 Mi frames in runs, as a real map has them. Dimensions only, not timed.
  let map = craftedMap(frames: 4 << 20) { i in Color(rawValue: UInt8((i >> 13) % 12))! }
  let picture = try MapPicture.render(map)
  #expect(picture.curve.side == 1024)
  #expect(picture.curveArea.width == 1024 && picture.curveArea.height == 1024)
  #expect(picture.framesPerPixel == 4)
  #expect(picture.canvas.width > 1024 + 300)
  #expect(picture.canvas.height >= 1024)
  let d = try decodePNG(try PNG.encode(picture.canvas))
  #expect(d.width == picture.canvas.width && d.height == picture.canvas.height)
  #expect(picture.legend.count == 12)
}
