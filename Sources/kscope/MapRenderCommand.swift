import ArgumentParser
import Foundation
import KscopeCore
import KscopeMaps
import KscopeOS
import KscopeRender

struct MapRender: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "render",
    abstract: "Draw a color map as a PNG picture: frames along a Hilbert curve, with a legend.",
    discussion: """
      Every frame is drawn in its color's hue along a Hilbert curve (frame 0 at the top left), \
      so frames that are neighbours in memory stay neighbours in the picture. The legend lists \
      each present color with its pages, MiB and share. Unknown frames are a grey \
      checkerboard; dark cells of the square are beyond the last frame.

      By default the curve is at most 1024 pixels wide. A small map gets a block of pixels per \
      frame; a big one gets 4, 16, 64, ... consecutive frames per pixel, and the pixel shows \
      their most common color (--reduce blend: their mean color). --size N sets the widest \
      curve; --scale N draws every frame as N x N pixels (--scale 1: one pixel per frame, full \
      detail). --grid outlines aligned squares of memory (1 GiB on a big map) and labels each \
      with its first physical address.

      Examples:
        kscope map render host.kcm -o host.png
        kscope map render guest.kcm -o guest.png --scale 1 --grid
        kscope map render guest.kcm -o guest.png --size 512 --reduce blend --json
      """)

  @Argument(help: "A color map file.") var file: String
  @Option(name: [.short, .long], help: "The PNG file to write (replaced atomically).")
  var output: String
  @Option(help: "The widest curve in pixels (default 1024).") var size: Int?
  @Option(help: "Pixels per frame side (1: one pixel per frame).") var scale: Int?
  @Option(help: "What a pixel holding several frames shows: dominant or blend.")
  var reduce = "dominant"
  @Flag(help: "Outline aligned squares of memory and label each with its first address.")
  var grid = false
  @OptionGroup var out: OutputOptions

  func run() throws {
    // Checked here rather than in validate(), so a bad value is one line, like other errors.
    if size != nil && scale != nil { throw CommandFailure("use --size or --scale, not both") }
    guard let reduction = CellReduction(rawValue: reduce) else {
      throw CommandFailure("--reduce '\(reduce)': use dominant or blend")
    }
    let sizing: Sizing =
      if let scale { .scale(pixelsPerFrame: scale) } else {
        .fit(side: size ?? CurveLayout.defaultSide)
      }
    // Reject bad sizes before reading a possibly large map.
    switch sizing {
    case .fit(let n) where n < 1: throw RenderError.invalidSize(n)
    case .scale(let n) where n < 1: throw RenderError.invalidScale(n)
    default: break
    }

    let map = try ColorMapFile.open(file)
    let picture = try MapPicture.render(
      map, sizing: sizing, reduction: reduction, grid: grid)
    let png = try PNG.encode(picture.canvas)
    try Files.writeAtomically(png, to: output)

    let c = picture.canvas
    if out.json {
      let gridBytes: Any =
        picture.grid.map { $0.framesPerSquare * UInt64(map.header.pageSize) } ?? NSNull()
      try printJSON([
        "output": output, "width": c.width, "height": c.height,
        "frames": map.frameCount, "frames_per_pixel": picture.framesPerPixel,
        "pixels_per_frame": picture.curve.cellPixels, "curve_side": picture.curve.side,
        "curve_width": picture.curve.width,
        "reduce": reduction.rawValue, "bytes": png.count,
        "grid_bytes": gridBytes,
        "colors": Describe.colorCounts(map),
      ])
      return
    }
    let scaleText =
      picture.framesPerPixel > 1
      ? "1 pixel = \(picture.framesPerPixel) frames (\(reduction.rawValue))"
      : "1 frame = \(picture.curve.cellPixels)x\(picture.curve.cellPixels) pixels"
    print(
      "\(output): \(c.width)x\(c.height) PNG, \(map.frameCount) frames on a "
        + "\(picture.curve.side)-pixel Hilbert curve, \(scaleText), \(png.count) bytes")
  }
}
