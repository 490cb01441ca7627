/// One guest memory access of a clone: which frame, read or write, and when (µs from the
/// clone's start, if the trace says).
public struct Access: Hashable, Sendable {
  public var frame: UInt64
  public var write: Bool
  public var timeMicros: UInt64?
  public init(frame: UInt64, write: Bool, timeMicros: UInt64? = nil) {
    self.frame = frame
    self.write = write
    self.timeMicros = timeMicros
  }
}

public struct TraceError: Error, Sendable, CustomStringConvertible {
  public let line: Int
  public let problem: String
  public var description: String { "trace line \(line): \(problem)" }
}

/// The access-trace text format: one access per line, `<frame number> <r|w> [time µs]`; the
/// frame is decimal or 0x-hex; `#` starts a comment; blank lines are ignored.
public enum Trace {
  /// Parses a trace for a guest of `frameCount` frames. Every frame must be inside the guest,
  /// times must not go backwards, and at most `maxAccesses` lines are accepted (traces travel
  /// between hosts: nothing in one is trusted).
  public static func parse(
    _ text: Substring, frameCount: UInt64, maxAccesses: Int = 50_000_000
  ) throws(TraceError) -> [Access] {
    var accesses: [Access] = []
    var lineNumber = 0
    var lastTime: UInt64 = 0
    for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNumber += 1
      let line = rawLine.prefix { $0 != "#" }
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
      if fields.isEmpty { continue }
      guard fields.count == 2 || fields.count == 3 else {
        throw TraceError(line: lineNumber, problem: "expected '<frame> <r|w> [time µs]'")
      }
      guard let frame = number(fields[0]) else {
        throw TraceError(line: lineNumber, problem: "'\(fields[0].prefix(32))' is not a frame number")
      }
      guard frame < frameCount else {
        throw TraceError(line: lineNumber, problem: "frame \(frame) is outside the guest (\(frameCount) frames)")
      }
      let write: Bool
      switch fields[1] {
      case "r": write = false
      case "w": write = true
      default: throw TraceError(line: lineNumber, problem: "'\(fields[1].prefix(32))' is neither r nor w")
      }
      var time: UInt64?
      if fields.count == 3 {
        guard let t = UInt64(fields[2]) else {
          throw TraceError(line: lineNumber, problem: "'\(fields[2].prefix(32))' is not a time in µs")
        }
        guard t >= lastTime else {
          throw TraceError(line: lineNumber, problem: "time \(t) µs goes backwards (after \(lastTime))")
        }
        lastTime = t
        time = t
      }
      guard accesses.count < maxAccesses else {
        throw TraceError(line: lineNumber, problem: "more than \(maxAccesses) accesses")
      }
      accesses.append(Access(frame: frame, write: write, timeMicros: time))
    }
    return accesses
  }

  /// The text form of a trace (what `parse` reads back).
  public static func text(_ accesses: [Access], comment: String? = nil) -> String {
    var out = comment.map { "# " + $0.split(separator: "\n").joined(separator: "\n# ") + "\n" } ?? ""
    for a in accesses {
      out += "\(a.frame) \(a.write ? "w" : "r")"
      if let t = a.timeMicros { out += " \(t)" }
      out += "\n"
    }
    return out
  }

  static func number(_ s: Substring) -> UInt64? {
    if s.hasPrefix("0x") || s.hasPrefix("0X") { return UInt64(s.dropFirst(2), radix: 16) }
    return UInt64(s)
  }
}
