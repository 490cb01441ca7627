import KscopeRender
import Testing

@Test func hilbertOrderOneVisitsTopLeftDownRightUp() {
  let cells = (0..<4).map { Hilbert.cell(of: UInt64($0), order: 1) }
  #expect(cells.map(\.x) == [0, 0, 1, 1])
  #expect(cells.map(\.y) == [0, 1, 1, 0])
}

@Test(arguments: 0...6)
func hilbertIsABijectionOfNeighbours(order: Int) {
  let n = 1 << order
  var seen = Set<Int>()
  var previous: (x: Int, y: Int)? = nil
  for d in 0..<UInt64(n * n) {
    let p = Hilbert.cell(of: d, order: order)
    #expect(p.x >= 0 && p.x < n && p.y >= 0 && p.y < n)
    #expect(Hilbert.index(x: p.x, y: p.y, order: order) == d)
    seen.insert(p.y * n + p.x)
    // The curve never jumps: consecutive frames are adjacent cells.
    if let q = previous { #expect(abs(p.x - q.x) + abs(p.y - q.y) == 1) }
    previous = p
  }
  #expect(seen.count == n * n)
}

@Test func hilbertQuartersFollowTheDocumentedQuadrants() {
  let order = 4
  let half = 8
  let quarter: UInt64 = 64
  for d in 0..<(4 * quarter) {
    let p = Hilbert.cell(of: d, order: order)
    switch d / quarter {
    case 0: #expect(p.x < half && p.y < half)  // top left
    case 1: #expect(p.x < half && p.y >= half)  // bottom left
    case 2: #expect(p.x >= half && p.y >= half)  // bottom right
    default: #expect(p.x >= half && p.y < half)  // top right
    }
  }
  #expect(Hilbert.cell(of: 255, order: order) == (15, 0))
  #expect(Hilbert.cell(of: 0, order: 0) == (0, 0))
}

@Test func hilbertSubSquaresHoldConsecutiveIndices() {
  // Every aligned 4x4 block of an order-5 curve holds 16 consecutive indices: what lets a
  // pixel stand for a group of consecutive frames.
  for by in 0..<8 {
    for bx in 0..<8 {
      var ds: [UInt64] = []
      for y in 0..<4 {
        for x in 0..<4 { ds.append(Hilbert.index(x: bx * 4 + x, y: by * 4 + y, order: 5)) }
      }
      ds.sort()
      #expect(ds.last! - ds.first! == 15)
      #expect(ds.first! % 16 == 0)
    }
  }
}
