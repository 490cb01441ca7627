/// The Hilbert curve on a square of side 2^order: a path through every cell that only ever
/// steps to an adjacent cell, and whose every aligned sub-square of side 2^j holds 4^j
/// consecutive indices. That is why a color map is drawn along it: frames that are neighbours
/// in physical memory stay neighbours in the picture, and a run of frames becomes a compact
/// blob rather than a stripe wrapping across rows.
///
/// Orientation, in image coordinates (y grows downwards): index 0 is the top-left cell, the
/// first quarter of the indices fills the top-left quadrant, the second the bottom-left, the
/// third the bottom-right, the fourth the top-right; the curve ends in the top-right cell.
public enum Hilbert {
  /// The cell of index `d` (`d < 4^order`) on a square of side 2^order.
  ///
  /// Builds the position from the least significant pair of bits upwards: each pair picks a
  /// quadrant of a square twice the size of the one placed so far; in the quadrants where the
  /// curve turns (the first and the last), the part already placed is mirrored first.
  public static func cell(of d: UInt64, order: Int) -> (x: Int, y: Int) {
    precondition(order >= 0 && order <= 31, "Hilbert order out of range")
    var x = 0
    var y = 0
    var rest = d
    var s = 1
    for _ in 0..<order {
      let (qx, qy) = quadrant(UInt8(truncatingIfNeeded: rest & 3))
      orient(&x, &y, side: s, qx: qx, qy: qy)
      x += s * qx
      y += s * qy
      rest >>= 2
      s <<= 1
    }
    return (x, y)
  }

  /// The index of cell (x, y) on a square of side 2^order; the inverse of `cell(of:order:)`.
  ///
  /// Reads the quadrant from the most significant bit of x and y downwards, adds the indices
  /// of the quadrants the curve has already passed, and re-orients the remaining coordinates
  /// into that quadrant's own frame.
  public static func index(x: Int, y: Int, order: Int) -> UInt64 {
    precondition(order >= 0 && order <= 31, "Hilbert order out of range")
    let n = 1 << order
    precondition(x >= 0 && x < n && y >= 0 && y < n, "cell outside the square")
    var x = x
    var y = y
    var d: UInt64 = 0
    var s = n >> 1
    while s > 0 {
      let qx = x & s != 0 ? 1 : 0
      let qy = y & s != 0 ? 1 : 0
      // Quadrant order along the curve: (0,0) -> 0, (0,1) -> 1, (1,1) -> 2, (1,0) -> 3.
      let q = UInt64((3 * qx) ^ qy)
      d += q * UInt64(s) * UInt64(s)
      x &= s - 1
      y &= s - 1
      orient(&x, &y, side: s, qx: qx, qy: qy)
      s >>= 1
    }
    return d
  }

  /// The quadrant (qx, qy) of a two-bit digit, in curve order: 0 -> (0,0), 1 -> (0,1),
  /// 2 -> (1,1), 3 -> (1,0). (Arithmetic rather than a switch: this runs once per level per
  /// cell, millions of times for a full-detail picture.)
  @inline(__always)
  static func quadrant(_ digit: UInt8) -> (Int, Int) {
    let qx = Int(digit >> 1) & 1
    return (qx, Int(digit ^ UInt8(qx)) & 1)
  }

  /// The sub-curves of the first and last quadrants are transposed (the last one also mirrored)
  /// so that they start and end next to their neighbours; the middle two are translated only.
  /// The map is its own inverse, so it serves both directions.
  static func orient(_ x: inout Int, _ y: inout Int, side s: Int, qx: Int, qy: Int) {
    guard qy == 0 else { return }
    if qx == 1 {
      x = s - 1 - x
      y = s - 1 - y
    }
    swap(&x, &y)
  }
}
