/// Address marks over the curve (`--grid`): the curve is cut into aligned squares of 4^m
/// consecutive frames (a Hilbert sub-square holds a power-of-two stretch of physical memory),
/// each outlined along its top and left edges and labelled with its first physical address,
/// so a blob in the picture can be traced back to where it sits in memory.
public struct AddressGrid: Sendable, Equatable {
  /// log4 of the frames per square.
  public let squareOrder: Int
  /// The side of a square in pixels.
  public let squarePixels: Int

  public var framesPerSquare: UInt64 { 1 << (2 * UInt64(squareOrder)) }

  /// The smallest squares at least `minPixels` wide and smaller than the whole curve (a
  /// quarter of it at most); nil when the curve is too small for that.
  public static func choose(for curve: CurveLayout, minPixels: Int) -> AddressGrid? {
    var m = curve.groupOrder
    while m < curve.frameOrder {
      let px = (1 << (m - curve.groupOrder)) * curve.cellPixels
      if px >= minPixels { return AddressGrid(squareOrder: m, squarePixels: px) }
      m += 1
    }
    return nil
  }

  /// Squares holding at least one frame.
  public func squareCount(frames: UInt64) -> UInt64 {
    (frames + framesPerSquare - 1) / framesPerSquare
  }

  /// The top-left pixel of square `s`, relative to the curve's top-left corner.
  public func origin(ofSquare s: UInt64, curve: CurveLayout) -> (x: Int, y: Int) {
    let (x, y) = Hilbert.cell(of: s, order: curve.frameOrder - squareOrder)
    return (x * squarePixels, y * squarePixels)
  }

  /// Draws the grid lines and labels over the curve at `area`.
  func draw(
    curve: CurveLayout, pageSize: UInt32, at area: Rect, textScale ts: Int, on canvas: inout Canvas
  ) {
    let squares = squareCount(frames: curve.frames)
    for s in 0..<squares {
      let (x, y) = origin(ofSquare: s, curve: curve)
      let x0 = area.x + x
      let y0 = area.y + y
      // Top and left edges only: together the squares' edges make the whole grid, and the
      // curve's own outline closes it on the right and at the bottom.
      canvas.fill(x: x0, y: y0, width: squarePixels, height: 1, Palette.grid)
      canvas.fill(x: x0, y: y0, width: 1, height: squarePixels, Palette.grid)
      let label = NumberText.compactBytes(s * framesPerSquare * UInt64(pageSize))
      let pad = ts
      canvas.fill(
        x: x0 + 1, y: y0 + 1, width: BitmapFont.width(label, scale: ts) + 2 * pad,
        height: 7 * ts + 2 * pad, Palette.background)
      canvas.text(label, x: x0 + 1 + pad, y: y0 + 1 + pad, scale: ts, Palette.text)
    }
  }
}
