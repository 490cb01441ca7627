import KscopeRender
import Testing

@Test func everyPrintableCharacterHasItsOwnGlyph() {
  var seen: [[UInt8]: Character] = [:]
  for a in UInt8(33)...UInt8(126) {
    let c = Character(Unicode.Scalar(a))
    let g = BitmapFont.glyph(c)
    #expect(g.count == BitmapFont.glyphHeight)
    #expect(g.allSatisfy { $0 < 1 << BitmapFont.glyphWidth })
    #expect(g.contains { $0 != 0 }, "'\(c)' is blank")
    if let other = seen[g] { Issue.record("'\(c)' looks like '\(other)'") }
    seen[g] = c
  }
  #expect(BitmapFont.glyph(" ").allSatisfy { $0 == 0 })
  // Outside ASCII: a box, not nothing.
  #expect(BitmapFont.glyph("é") == BitmapFont.glyph("\u{1F600}"))
  #expect(BitmapFont.glyph("é").contains { $0 != 0 })
  // Descenders only on the letters that have them.
  for c in "gjpqy,;" { #expect(BitmapFont.glyph(c)[7] != 0, "'\(c)'") }
  for c in "abcdefhiklmnorstuvwxz0123456789ABCXYZ" {
    #expect(BitmapFont.glyph(c)[7...].allSatisfy { $0 == 0 })
  }
}

@Test func textIsDrawnAtIntegerScale() {
  var canvas = Canvas(width: 40, height: 20, fill: RGB(0, 0, 0))
  let white = RGB(255, 255, 255)
  let end = canvas.text("T1", x: 1, y: 1, scale: 2, white)
  #expect(end == 1 + 2 * BitmapFont.advance * 2)
  #expect(BitmapFont.width("T1", scale: 2) == 22)
  // T's top bar: 5 columns of 2x2 pixels from (1,1); its stem is column 2.
  for x in 1..<11 {
    #expect(canvas.pixel(x: x, y: 1) == white && canvas.pixel(x: x, y: 2) == white)
  }
  #expect(canvas.pixel(x: 11, y: 1) == RGB(0, 0, 0))
  #expect(canvas.pixel(x: 5, y: 13) == white)
  #expect(canvas.pixel(x: 3, y: 13) == RGB(0, 0, 0))
}

@Test func numbersForTheLegend() {
  #expect(NumberText.grouped(0) == "0")
  #expect(NumberText.grouped(999) == "999")
  #expect(NumberText.grouped(1000) == "1,000")
  #expect(NumberText.grouped(6_553_600) == "6,553,600")
  #expect(NumberText.fixed(25600, digits: 1) == "25,600.0")
  #expect(NumberText.fixed(0.05, digits: 2) == "0.05")
  #expect(NumberText.fixed(2.5, digits: 0) == "3")
  #expect(NumberText.mib(256, pageSize: 4096) == "1.0")
  #expect(NumberText.percent(1, of: 6_553_600) == "<0.01%")
  #expect(NumberText.percent(0, of: 10) == "0.00%")
  #expect(NumberText.percent(1, of: 3) == "33.33%")
  #expect(NumberText.percent(5, of: 0) == "0.00%")
  #expect(NumberText.bytes(4096) == "4 KiB")
  #expect(NumberText.bytes(2 << 20) == "2 MiB")
  #expect(NumberText.bytes(1000) == "1,000 B")
}
