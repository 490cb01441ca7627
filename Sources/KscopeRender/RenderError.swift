/// Why a picture could not be made. Each description is the one-line message for the user.
public enum RenderError: Error, Sendable, Equatable, CustomStringConvertible {
  /// `--size` below one pixel.
  case invalidSize(Int)
  /// `--scale` below one pixel per frame.
  case invalidScale(Int)
  /// The curve would be wider than the limit.
  case tooLarge(side: Int, limit: Int)
  /// zlib refused (its return code), which only happens when memory runs out.
  case zlib(operation: String, code: Int32)

  public var description: String {
    switch self {
    case .invalidSize(let n): "--size \(n): the curve needs at least 1 pixel per side"
    case .invalidScale(let n): "--scale \(n): a frame needs at least 1 pixel"
    case .tooLarge(let side, let limit):
      side == Int.max
        ? "the curve would be wider than \(limit) pixels; use a smaller --scale or --size"
        : "the curve would be \(side) pixels wide, more than \(limit); use a smaller --scale or --size"
    case .zlib(let op, let code): "zlib \(op) failed (code \(code))"
    }
  }
}
