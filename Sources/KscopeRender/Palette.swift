import KscopeCore

/// An 8-bit sRGB color.
public struct RGB: Sendable, Hashable, CustomStringConvertible {
  public var r: UInt8
  public var g: UInt8
  public var b: UInt8
  public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
    self.r = r
    self.g = g
    self.b = b
  }
  /// "#rrggbb".
  public var description: String {
    let digits = Array("0123456789abcdef")
    var s = "#"
    for v in [r, g, b] {
      s.append(digits[Int(v >> 4)])
      s.append(digits[Int(v & 15)])
    }
    return s
  }
}

/// The colors of the picture: one hue per frame color, plus the page around it.
///
/// The hues are chosen to stay apart on a dark page: the never-fetched colors (free, zero) are
/// calm dark blue and grey so a mostly idle guest reads as quiet; the kernel's own memory is warm
/// (red code, orange data, yellow page tables, purple slab, pink other); user memory and the page
/// cache are cool and bright (blue cache, green anonymous data, turquoise user code); reserved
/// is brown. `unknown` is not a hue at all but a grey checkerboard, the convention image editors
/// use for "nothing here", so it never passes for a real class.
public enum Palette {
  /// Around the picture, and the cells of the curve past the last frame.
  public static let background = RGB(0x12, 0x14, 0x1A)
  /// The outline of the curve square and of legend swatches.
  public static let outline = RGB(0x5C, 0x63, 0x70)
  public static let text = RGB(0xE8, 0xEA, 0xEE)
  /// The address grid's lines (`--grid`).
  public static let grid = RGB(0xD0, 0xD4, 0xDC)
  public static let dimText = RGB(0x9A, 0xA1, 0xAD)

  /// The two squares of the unknown checkerboard.
  public static let unknownDark = RGB(0x3A, 0x3A, 0x3E)
  public static let unknownLight = RGB(0x62, 0x62, 0x68)

  /// The flat color of a frame color (for `unknown`: the mean of its checkerboard, which is
  /// what a blended pixel uses).
  public static func rgb(_ color: Color) -> RGB {
    switch color {
    case .unknown: RGB(0x4E, 0x4E, 0x53)
    case .free: RGB(0x26, 0x3A, 0x5E)
    case .zero: RGB(0x8E, 0xA4, 0xB0)
    case .kernelCode: RGB(0xE6, 0x39, 0x46)
    case .kernelData: RGB(0xF4, 0x8C, 0x2C)
    case .pageTable: RGB(0xFF, 0xD6, 0x0A)
    case .kernelHeap: RGB(0xA7, 0x6B, 0xF0)
    case .pageCache: RGB(0x2E, 0x9B, 0xFF)
    case .userCode: RGB(0x2E, 0xE6, 0xC8)
    case .userData: RGB(0x5C, 0xC8, 0x3C)
    case .kernelOther: RGB(0xFF, 0x6E, 0xB4)
    case .reserved: RGB(0x8A, 0x5A, 0x36)
    }
  }

  /// The pixel at (x, y) of a region painted in `color`: flat, except the unknown checkerboard
  /// of `checker`-pixel squares, anchored to the image so neighbouring unknown cells join into
  /// one pattern.
  @inline(__always)
  public static func pixel(_ color: Color, x: Int, y: Int, checker: Int) -> RGB {
    guard color == .unknown else { return rgb(color) }
    return (x / checker + y / checker) & 1 == 0 ? unknownDark : unknownLight
  }
}
