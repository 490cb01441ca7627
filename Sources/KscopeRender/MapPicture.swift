import KscopeCore

/// A rectangle of pixels.
public struct Rect: Sendable, Equatable {
  public var x: Int
  public var y: Int
  public var width: Int
  public var height: Int
  public init(x: Int, y: Int, width: Int, height: Int) {
    self.x = x
    self.y = y
    self.width = width
    self.height = height
  }
  public func contains(x px: Int, y py: Int) -> Bool {
    px >= x && px < x + width && py >= y && py < y + height
  }
}

/// How big the curve is.
public enum Sizing: Sendable, Equatable {
  /// The largest curve at most this many pixels wide (`--size`).
  case fit(side: Int)
  /// Every frame a square of this many pixels per side (`--scale`).
  case scale(pixelsPerFrame: Int)
}

/// One row of the legend: a present color, its frames and where its swatch was drawn.
public struct LegendEntry: Sendable, Equatable {
  public let color: Color
  public let pages: UInt64
  public let swatch: Rect
}

/// A color map drawn as a picture: the title on top, the Hilbert curve of frames on the left,
/// the legend with per-color totals on the right.
public struct MapPicture: Sendable {
  public let canvas: Canvas
  public let curve: CurveLayout
  /// Where the curve is drawn: `curve.width` x `curve.side` pixels (the square, or its left half
  /// when the right half holds no frame).
  public let curveArea: Rect
  public let legend: [LegendEntry]
  public let reduction: CellReduction
  /// The address grid, when asked for and the curve is big enough.
  public let grid: AddressGrid?
  /// The integer scale of the bitmap font.
  public let textScale: Int
  /// The side of the unknown checkerboard's squares: it grows with the text so the pattern
  /// still reads as a checkerboard when a big picture is viewed shrunk.
  public var checkerSide: Int { 2 * textScale }

  /// Frames per pixel: 1 when a frame is a block of pixels.
  public var framesPerPixel: UInt64 { curve.framesPerCell }

  /// The legend's order: the taxonomy's, with `unknown` last since it is not a class.
  public static let legendOrder: [Color] = Color.allCases.filter { $0 != .unknown } + [.unknown]

  /// Draws `map`. Complexity: O(frames + pixels).
  public static func render(
    _ map: ColorMap, sizing: Sizing = .fit(side: CurveLayout.defaultSide),
    reduction: CellReduction = .dominant, grid wantsGrid: Bool = false
  ) throws(RenderError) -> MapPicture {
    let curve: CurveLayout
    switch sizing {
    case .fit(let side): curve = try .fitting(frames: map.frameCount, side: side)
    case .scale(let px): curve = try .scaled(frames: map.frameCount, pixels: px)
    }
    // Text grows with the curve so the legend stays legible beside a big picture.
    let ts = max(2, curve.side / 1024 + 1)
    let margin = 8 * ts
    let advance = BitmapFont.advance * ts
    let lineHeight = BitmapFont.lineHeight * ts
    let rowHeight = lineHeight + 2 * ts
    let outline = max(1, ts / 2)
    // Squares big enough that their labels cover little of them.
    let grid = wantsGrid ? AddressGrid.choose(for: curve, minPixels: 64 * ts) : nil

    // The words, first: their sizes decide the layout.
    let h = map.header
    let titleScale = ts + 1
    let title = h.kernelRelease.map { "Linux \($0)" } ?? "kernel unknown"
    let subtitle =
      "\(NumberText.grouped(map.frameCount)) frames of \(NumberText.bytes(UInt64(h.pageSize)))"
      + " = \(NumberText.mib(map.frameCount, pageSize: h.pageSize)) MiB"
    let table = legendTable(map)
    var notes = legendNotes(curve, pageSize: h.pageSize, reduction: reduction)
    if let grid {
      let bytes = NumberText.bytes(grid.framesPerSquare * UInt64(h.pageSize))
      notes += ["grid: squares of \(bytes), each", "labelled with its first address"]
    }

    let titleY = margin
    let subtitleY = titleY + BitmapFont.lineHeight * titleScale
    let curveArea = Rect(
      x: margin + outline, y: subtitleY + lineHeight + margin, width: curve.width,
      height: curve.side)
    let legendX = curveArea.x + curve.width + outline + 2 * margin
    let legendY = curveArea.y
    let tableChars = table.map { $0.count }.max() ?? 0
    let legendWidth = max(
      (tableChars + swatchChars) * advance, (notes.map(\.count).max() ?? 0) * advance)
    let legendHeight =
      table.count * rowHeight + (notes.isEmpty ? 0 : lineHeight + notes.count * lineHeight)
    let width = max(
      legendX + legendWidth + margin,
      margin
        + max(BitmapFont.width(title, scale: titleScale), BitmapFont.width(subtitle, scale: ts))
        + margin)
    let height = curveArea.y + max(curve.side + outline, legendHeight) + margin

    var canvas = Canvas(width: width, height: height, fill: Palette.background)
    canvas.text(title, x: margin, y: titleY, scale: titleScale, Palette.text)
    canvas.text(subtitle, x: margin, y: subtitleY, scale: ts, Palette.dimText)

    canvas.outline(
      x: curveArea.x, y: curveArea.y, width: curveArea.width, height: curveArea.height,
      thickness: outline, Palette.outline)
    drawCurve(map, curve, reduction, at: curveArea, checker: 2 * ts, on: &canvas)
    grid?.draw(curve: curve, pageSize: h.pageSize, at: curveArea, textScale: ts, on: &canvas)

    // The table: a swatch, then the columns; the header and the total row have no swatch.
    var legend: [LegendEntry] = []
    let swatchSide = 7 * ts
    for (i, row) in table.enumerated() {
      let y = legendY + i * rowHeight
      let isData = i > 0 && i < table.count - 1
      if isData {
        let color = row.color!
        let swatch = Rect(x: legendX, y: y, width: swatchSide, height: swatchSide)
        for yy in 0..<swatchSide {
          for xx in 0..<swatchSide {
            canvas.set(
              x: swatch.x + xx, y: swatch.y + yy,
              Palette.pixel(color, x: xx, y: yy, checker: 2 * ts))
          }
        }
        canvas.outline(
          x: swatch.x, y: swatch.y, width: swatchSide, height: swatchSide, thickness: 1,
          Palette.outline)
        legend.append(LegendEntry(color: color, pages: map.count(of: color), swatch: swatch))
      }
      canvas.text(
        row.text, x: legendX + swatchChars * advance, y: y, scale: ts,
        isData ? Palette.text : Palette.dimText)
    }
    var y = legendY + table.count * rowHeight + lineHeight
    for line in notes {
      canvas.text(line, x: legendX, y: y, scale: ts, Palette.dimText)
      y += lineHeight
    }

    return MapPicture(
      canvas: canvas, curve: curve, curveArea: curveArea, legend: legend, reduction: reduction,
      grid: grid, textScale: ts)
  }

  /// Character columns taken by the swatch and the gap after it.
  static let swatchChars = 2

  /// One line of the legend table, with the color it describes (nil: header or total).
  struct TableRow {
    var color: Color?
    var text: String
    var count: Int { text.count }
  }

  /// The legend table as fixed-width text: header, one row per present color, total.
  static func legendTable(_ map: ColorMap) -> [TableRow] {
    let total = map.frameCount
    let pageSize = map.header.pageSize
    var cells: [(Color?, [String])] = [(nil, ["color", "pages", "MiB", "share"])]
    for c in legendOrder where map.count(of: c) > 0 {
      let n = map.count(of: c)
      cells.append(
        (
          c,
          [
            c.name, NumberText.grouped(n), NumberText.mib(n, pageSize: pageSize),
            NumberText.percent(n, of: total),
          ]
        ))
    }
    cells.append(
      (
        nil,
        [
          "total", NumberText.grouped(total), NumberText.mib(total, pageSize: pageSize),
          total > 0 ? "100.00%" : "0.00%",
        ]
      ))
    var widths = [0, 0, 0, 0]
    for (_, cols) in cells {
      for (k, s) in cols.enumerated() { widths[k] = max(widths[k], s.count) }
    }
    func pad(_ s: String, _ w: Int, right: Bool) -> String {
      let fill = String(repeating: " ", count: w - s.count)
      return right ? fill + s : s + fill
    }
    return cells.map { color, cols in
      let text =
        pad(cols[0], widths[0], right: false) + "  " + pad(cols[1], widths[1], right: true) + "  "
        + pad(cols[2], widths[2], right: true) + "  " + pad(cols[3], widths[3], right: true)
      return TableRow(color: color, text: text)
    }
  }

  /// How to read the picture: the scale, what a mixed pixel shows, where the curve starts.
  static func legendNotes(_ curve: CurveLayout, pageSize: UInt32, reduction: CellReduction)
    -> [String]
  {
    var notes: [String] = []
    if curve.framesPerCell > 1 {
      let bytes = NumberText.bytes(curve.framesPerCell * UInt64(pageSize))
      notes.append("1 pixel = \(NumberText.grouped(curve.framesPerCell)) frames (\(bytes))")
      notes.append(
        reduction == .dominant
          ? "a pixel shows its most common color" : "a pixel blends its frames' colors")
    } else if curve.cellPixels > 1 {
      notes.append("1 frame = \(curve.cellPixels) x \(curve.cellPixels) pixels")
    } else {
      notes.append("1 pixel = 1 frame")
    }
    notes.append("frames follow a Hilbert curve from the")
    notes.append("top left corner: neighbours stay close")
    if curve.frames < UInt64(curve.widthCells * curve.cellsPerSide) * curve.framesPerCell {
      notes.append("dark cells: beyond the last frame")
    }
    return notes
  }

  /// Paints every cell in curve order; the frames of a cell are consecutive in the map.
  static func drawCurve(
    _ map: ColorMap, _ curve: CurveLayout, _ reduction: CellReduction, at area: Rect,
    checker: Int, on canvas: inout Canvas
  ) {
    var reducer = CellReducer(entries: map.entries, totals: map.totals, mode: reduction)
    let cells = UInt64(curve.cellsPerSide) * UInt64(curve.cellsPerSide)
    let px = curve.cellPixels
    for c in 0..<cells {
      let range = curve.frames(ofCell: c)
      // Cells past the end all come last in curve order and stay background.
      if range.isEmpty { break }
      let (cx, cy) = Hilbert.cell(of: c, order: curve.cellOrder)
      let x0 = area.x + cx * px
      let y0 = area.y + cy * px
      switch reducer.paint(range) {
      case .background: break
      case .rgb(let v): canvas.fill(x: x0, y: y0, width: px, height: px, v)
      case .color(let color) where color != .unknown:
        canvas.fill(x: x0, y: y0, width: px, height: px, Palette.rgb(color))
      case .color(let color):
        for y in y0..<(y0 + px) {
          for x in x0..<(x0 + px) {
            canvas.set(x: x, y: y, Palette.pixel(color, x: x, y: y, checker: checker))
          }
        }
      }
    }
  }
}
