import KscopeRender
import Testing

@Test func layoutOfASmallMapUsesBlocks() throws {
  let l = try CurveLayout.fitting(frames: 100, side: 1024)
  #expect(l.frameOrder == 4)  // 16 x 16 = 256 >= 100
  #expect(l.groupOrder == 0)
  #expect(l.framesPerCell == 1)
  #expect(l.cellPixels == 64)
  #expect(l.side == 1024)
  // 100 <= 128 frames: only the left half of the square holds frames.
  #expect(l.widthCells == 8)
  #expect(l.width == 512)

  let odd = try CurveLayout.fitting(frames: 200, side: 1000)
  #expect(odd.cellPixels == 62)
  #expect(odd.side == 992)
  #expect(odd.width == 992)
}

@Test func layoutOfABigMapGroupsFrames() throws {
  let l = try CurveLayout.fitting(frames: 4 << 20, side: 1024)
  #expect(l.frameOrder == 11)
  #expect(l.groupOrder == 1)
  #expect(l.framesPerCell == 4)
  #expect(l.cellPixels == 1)
  #expect(l.side == 1024)
  #expect(l.width == 1024)
  #expect(l.frames(ofCell: 0) == 0..<4)
  #expect(l.frames(ofCell: (1 << 20) - 1) == (4 << 20) - 4..<(4 << 20))

  // A side that is not a power of two rounds down to one.
  let m = try CurveLayout.fitting(frames: 6_553_600, side: 1000)
  #expect(m.side == 512)
  #expect(m.framesPerCell == 64)
  #expect(m.width == 256)
  #expect(m.frames(ofCell: 102_400) == 6_553_600..<6_553_600)
  #expect(m.frames(ofCell: 102_399) == 6_553_536..<6_553_600)
}

@Test func layoutAtAFixedScale() throws {
  let l = try CurveLayout.scaled(frames: 6_553_600, pixels: 1)
  #expect(l.side == 4096)
  #expect(l.framesPerCell == 1)
  let b = try CurveLayout.scaled(frames: 64, pixels: 8)
  #expect(b.side == 64)
  #expect(throws: RenderError.tooLarge(side: 16384, limit: 8192)) {
    try CurveLayout.scaled(frames: 6_553_600, pixels: 4)
  }
  #expect(throws: RenderError.invalidScale(0)) { try CurveLayout.scaled(frames: 10, pixels: 0) }
}

@Test func layoutEdgeCases() throws {
  #expect(throws: RenderError.invalidSize(0)) { try CurveLayout.fitting(frames: 10, side: 0) }
  #expect(throws: RenderError.invalidSize(-3)) { try CurveLayout.fitting(frames: 10, side: -3) }
  #expect(throws: RenderError.tooLarge(side: 9000, limit: 8192)) {
    try CurveLayout.fitting(frames: 10, side: 9000)
  }
  let empty = try CurveLayout.fitting(frames: 0, side: 16)
  #expect(empty.cellsPerSide == 1)
  #expect(empty.frames(ofCell: 0).isEmpty)
  let one = try CurveLayout.fitting(frames: 1, side: 1)
  #expect(one.side == 1)
  #expect(one.width == 1)
  let tiny = try CurveLayout.fitting(frames: 1 << 20, side: 1)
  #expect(tiny.framesPerCell == 1 << 20)
  #expect(CurveLayout.order(covering: 5) == 2)
  #expect(CurveLayout.order(covering: 16) == 2)
  #expect(CurveLayout.order(covering: 17) == 3)
}
