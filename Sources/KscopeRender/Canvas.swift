/// An RGB raster, 3 bytes per pixel, rows top to bottom: what the PNG encoder writes.
public struct Canvas: Sendable, Equatable {
  public let width: Int
  public let height: Int
  /// Row-major RGB bytes, `width * height * 3` of them.
  public var pixels: [UInt8]

  public init(width: Int, height: Int, fill: RGB) {
    precondition(width > 0 && height > 0, "an empty canvas")
    self.width = width
    self.height = height
    var px = [UInt8](repeating: 0, count: width * height * 3)
    var i = 0
    while i < px.count {
      px[i] = fill.r
      px[i + 1] = fill.g
      px[i + 2] = fill.b
      i += 3
    }
    pixels = px
  }

  public func pixel(x: Int, y: Int) -> RGB {
    let i = (y * width + x) * 3
    return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
  }

  @inline(__always)
  public mutating func set(x: Int, y: Int, _ c: RGB) {
    let i = (y * width + x) * 3
    pixels[i] = c.r
    pixels[i + 1] = c.g
    pixels[i + 2] = c.b
  }

  /// Fills a rectangle, clipped to the canvas.
  public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ c: RGB) {
    let x0 = max(0, x)
    let y0 = max(0, y)
    let x1 = min(width, x + w)
    let y1 = min(height, y + h)
    guard x0 < x1 else { return }
    for yy in y0..<y1 {
      for xx in x0..<x1 { set(x: xx, y: yy, c) }
    }
  }

  /// A one-`thickness` outline just outside the rectangle (x, y, w, h), so it covers nothing
  /// inside it.
  public mutating func outline(
    x: Int, y: Int, width w: Int, height h: Int, thickness t: Int, _ c: RGB
  ) {
    fill(x: x - t, y: y - t, width: w + 2 * t, height: t, c)
    fill(x: x - t, y: y + h, width: w + 2 * t, height: t, c)
    fill(x: x - t, y: y, width: t, height: h, c)
    fill(x: x + w, y: y, width: t, height: h, c)
  }

  /// Draws `text` with its top-left at (x, y), each font pixel a `scale` x `scale` square;
  /// returns the x just after the last glyph.
  @discardableResult
  public mutating func text(_ s: String, x: Int, y: Int, scale: Int, _ c: RGB) -> Int {
    var cx = x
    for ch in s {
      let rows = BitmapFont.glyph(ch)
      for (r, bits) in rows.enumerated() where bits != 0 {
        for col in 0..<BitmapFont.glyphWidth where bits & (0x10 >> UInt8(col)) != 0 {
          fill(x: cx + col * scale, y: y + r * scale, width: scale, height: scale, c)
        }
      }
      cx += BitmapFont.advance * scale
    }
    return cx
  }
}
