import KscopeRender
import Testing

@Test func pngRoundTripsEveryPixel() throws {
  // Flat areas, gradients and noise, so every scanline filter gets chosen somewhere.
  var canvas = Canvas(width: 37, height: 23, fill: RGB(10, 20, 30))
  var seed: UInt32 = 12345
  for y in 0..<23 {
    for x in 0..<37 {
      switch y % 3 {
      case 0: canvas.set(x: x, y: y, RGB(UInt8(x * 7), UInt8(y * 11), UInt8((x + y) * 3)))
      case 1:
        seed = seed &* 1_103_515_245 &+ 12345
        canvas.set(
          x: x, y: y, RGB(UInt8(seed >> 24), UInt8((seed >> 16) & 255), UInt8((seed >> 8) & 255)))
      default: if x > 20 { canvas.set(x: x, y: y, RGB(200, 100, 50)) }
      }
    }
  }
  let png = try PNG.encode(canvas)
  let d = try decodePNG(png)
  #expect(d.chunks == ["IHDR", "IDAT", "IEND"])
  #expect(d.width == 37 && d.height == 23)
  #expect(d.pixels == canvas.pixels)
}

@Test func pngFiltersAreTheSpecificationsPredictors() {
  #expect(PNG.predictor(0, a: 9, b: 9, c: 9) == 0)
  #expect(PNG.predictor(1, a: 7, b: 8, c: 9) == 7)
  #expect(PNG.predictor(2, a: 7, b: 8, c: 9) == 8)
  #expect(PNG.predictor(3, a: 255, b: 254, c: 0) == 254)
  // Paeth: p = a + b - c; nearest of a, b, c, ties to a then b.
  #expect(PNG.predictor(4, a: 10, b: 20, c: 10) == 20)
  #expect(PNG.predictor(4, a: 10, b: 20, c: 20) == 10)
  #expect(PNG.predictor(4, a: 10, b: 10, c: 10) == 10)
  #expect(PNG.predictor(4, a: 100, b: 0, c: 50) == 50)
}

@Test func pngDecoderRejectsDamage() throws {
  let png = try PNG.encode(Canvas(width: 4, height: 4, fill: RGB(1, 2, 3)))
  var bad = png
  bad[20] ^= 1  // inside IHDR: its CRC no longer matches
  #expect(throws: PNGDecodeError.self) { try decodePNG(bad) }
  #expect(throws: PNGDecodeError.self) { try decodePNG(Array(png.dropLast(4))) }
}

@Test func bigPicturesSplitIDAT() throws {
  // Noise does not compress: more than one IDAT chunk of at most 1 MiB each.
  var canvas = Canvas(width: 700, height: 700, fill: RGB(0, 0, 0))
  var seed: UInt64 = 99
  for i in 0..<canvas.pixels.count {
    seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    canvas.pixels[i] = UInt8(truncatingIfNeeded: seed >> 33)
  }
  let d = try decodePNG(try PNG.encode(canvas))
  #expect(d.chunks.filter { $0 == "IDAT" }.count >= 2)
  #expect(d.pixels == canvas.pixels)
}
