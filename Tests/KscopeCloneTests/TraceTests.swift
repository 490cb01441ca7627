import Testing

@testable import KscopeClone

@Suite struct TraceTests {
  @Test func parsesFramesModesTimesAndComments() throws {
    let text = "# a trace\n12 r\n0x10 w 5 # hex\n\n  7\tr 9\n"
    let t = try Trace.parse(text[...], frameCount: 100)
    #expect(t == [Access(frame: 12, write: false), Access(frame: 16, write: true, timeMicros: 5),
      Access(frame: 7, write: false, timeMicros: 9)])
    #expect(try Trace.parse(Trace.text(t, comment: "x\ny")[...], frameCount: 100) == t)
  }

  @Test(arguments: [
    ("12", 1), ("12 x", 1), ("x r", 1), ("100 r", 1), ("1 r 5\n2 r 4", 2), ("1 r -1", 1),
    ("1 r 2 3", 1), ("18446744073709551616 r", 1), ("0x r", 1),
  ])
  func rejectsWithTheLine(text: String, line: Int) {
    #expect(throws: TraceError.self) { try Trace.parse(text[...], frameCount: 100) }
    do { _ = try Trace.parse(text[...], frameCount: 100) } catch { #expect(error.line == line) }
  }

  @Test func boundsTheNumberOfAccesses() {
    #expect(throws: TraceError.self) { try Trace.parse("1 r\n2 r\n3 r"[...], frameCount: 10, maxAccesses: 2) }
  }
}
