/// Where frames go on the picture: a Hilbert square of cells, each cell a group of 4^j
/// consecutive frames (an aligned Hilbert sub-square of the full frame curve) drawn as a block of
/// `cellPixels` x `cellPixels` pixels. Exactly one of the two is above 1: small maps get big
/// blocks, big maps get several frames per pixel.
public struct CurveLayout: Sendable, Equatable {
  /// Frames of the map (the curve may have room for more: those cells are background).
  public let frames: UInt64
  /// The frame curve's order: the smallest k with 4^k >= frames.
  public let frameOrder: Int
  /// log4 of the frames per cell (j above).
  public let groupOrder: Int
  /// The side in pixels of one cell's block.
  public let cellPixels: Int

  /// The largest curve side `--size` and `--scale` may ask for: 8192^2 RGB pixels are 192 MiB
  /// before compression, beyond which a picture stops being something to look at.
  public static let maxSide = 8192
  /// The curve side without options: big enough to see structure, small enough to view whole.
  public static let defaultSide = 1024

  /// The cells on one side of the square.
  public var cellsPerSide: Int { 1 << (frameOrder - groupOrder) }
  /// The order of the cell curve (cells per side = 2^cellOrder).
  public var cellOrder: Int { frameOrder - groupOrder }
  public var framesPerCell: UInt64 { 1 << (2 * UInt64(groupOrder)) }
  /// The curve's side in pixels.
  public var side: Int { cellsPerSide * cellPixels }

  /// The cells across the drawn part of the square. The curve fills the top-left quadrant, then
  /// the bottom-left one, then the right half; when the frames end within the left half, the
  /// right half would be all background and is left out (the picture is then half as wide).
  public var widthCells: Int {
    let quarter = frameOrder > 0 ? UInt64(1) << (2 * UInt64(frameOrder - 1)) : 0
    return frameOrder > 0 && frames <= 2 * quarter ? cellsPerSide / 2 : cellsPerSide
  }
  /// The drawn part of the square in pixels: `width` x `side`.
  public var width: Int { widthCells * cellPixels }

  init(frames: UInt64, frameOrder: Int, groupOrder: Int, cellPixels: Int) {
    self.frames = frames
    self.frameOrder = frameOrder
    self.groupOrder = groupOrder
    self.cellPixels = cellPixels
  }

  /// The smallest k with 4^k >= frames (0 for 0 or 1 frame).
  public static func order(covering frames: UInt64) -> Int {
    var k = 0
    while k < 32 && (UInt64(1) << (2 * UInt64(k))) < frames { k += 1 }
    return k
  }

  /// The largest curve no wider than `side` pixels: one frame per cell drawn as the biggest
  /// integer block that fits when the frame curve is narrower than `side`, otherwise the
  /// smallest group of frames per pixel that fits (so the curve is the largest power of two
  /// not above `side`).
  public static func fitting(frames: UInt64, side: Int) throws(RenderError) -> CurveLayout {
    guard side >= 1 else { throw .invalidSize(side) }
    guard side <= maxSide else { throw .tooLarge(side: side, limit: maxSide) }
    let k = order(covering: frames)
    let cells = 1 << k
    if cells <= side {
      return CurveLayout(frames: frames, frameOrder: k, groupOrder: 0, cellPixels: side / cells)
    }
    var fit = 0
    while (1 << (fit + 1)) <= side { fit += 1 }
    return CurveLayout(frames: frames, frameOrder: k, groupOrder: k - fit, cellPixels: 1)
  }

  /// Every frame drawn as a `pixels` x `pixels` block (1: one pixel per frame, full detail).
  public static func scaled(frames: UInt64, pixels: Int) throws(RenderError) -> CurveLayout {
    guard pixels >= 1 else { throw .invalidScale(pixels) }
    let k = order(covering: frames)
    guard k <= 13, (1 << k) * pixels <= maxSide else {
      throw .tooLarge(side: k <= 13 ? (1 << k) * pixels : Int.max, limit: maxSide)
    }
    return CurveLayout(frames: frames, frameOrder: k, groupOrder: 0, cellPixels: pixels)
  }

  /// The range of frames a cell covers, clipped to the map (empty past the end).
  public func frames(ofCell index: UInt64) -> Range<UInt64> {
    let lo = min(index * framesPerCell, frames)
    return lo..<min(lo + framesPerCell, frames)
  }
}
