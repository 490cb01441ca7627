import Foundation
import KscopeCore
import KscopeOS
import KscopeSnapshot

/// Locating and reading the hint region of a path given on the command line.
enum HintsFiles {
  /// The region file, opened: PATH itself (a regular file), or for a snapshot directory the
  /// file its manifest names (`Snapshot.open`: the one manifest reader; files are opened inside
  /// the directory without following links, so a `hints` link to /etc/shadow is refused).
  static func open(_ path: String) throws -> OpenFile {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw CommandFailure("\(path): no such file or directory")
    }
    guard isDir.boolValue else {
      do { return try OpenFile.open(path) } catch { throw CommandFailure("\(error)") }
    }
    do { return try Snapshot.open(path).hints } catch {
      throw CommandFailure("\(path): not a usable snapshot: \(error)")
    }
  }
}

/// Text and JSON views of a validated hint set.
enum HintsReport {
  static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

  /// Writes the JSON view to `out` as it goes (keys sorted, as `printJSON` writes them): a
  /// region's 150,000 files become 150,000 lines, each decoded, written and dropped, never a
  /// tree of the whole document (1.45 GB of peak RSS for a 32 MiB region when it was one).
  static func writeJSON(_ h: HintSet, to out: inout JSONStream) throws {
    let k = h.kernel
    func address(_ v: UInt64?) -> JSONStream.Value { v.map { .string(hexAddress($0)) } ?? .null }
    out.open("{")
    out.member("btf", first: true)
    if let b = h.btf {
      out.inline([
        ("compressed_size", .number(UInt64(b.data.count))), ("compression", .string("zstd")),
        ("size", .number(b.size)),
      ])
    } else {
      out.value(.null)
    }
    out.member("build_id")
    out.value(.string(h.buildIDHex))
    out.member("files")
    out.open("[")
    for (i, f) in h.files.enumerated() {
      if i > 0 { out.raw(",") }
      out.newline()
      out.raw("{\"device\": ")
      out.value(.string(deviceText(f.device)))
      out.raw(", \"extents\": [")
      for (j, e) in f.extents.enumerated() {
        if j > 0 { out.raw(", ") }
        out.inline([
          ("frame", e.frame.map { .number($0.rawValue) } ?? .null), ("page", .number(e.filePage)),
          ("pages", .number(UInt64(e.pages))),
        ])
        try out.flushIfFull()  // one file may have a million extents
      }
      out.raw("], ")
      out.inline(
        [
          ("frames_known", .bool(f.framesKnown)), ("inode", .number(f.inode)), ("pages", .number(f.residentPages)),
          ("path", .string(f.path)), ("size", .number(f.size)), ("truncated", .bool(f.extentsTruncated)),
        ], braces: false)
      out.raw("}")
      try out.flushIfFull()
    }
    out.close("]", empty: h.files.isEmpty)
    out.member("frames")
    if let f = h.frames {
      out.open("{")
      out.member("colors", first: true)
      var colors: [(String, UInt64)] = []
      for (code, n) in f.colorTotals().enumerated() where n > 0 {
        colors.append((Color(rawValue: UInt8(code))?.name ?? "code-\(code)", n))
      }
      out.inline(colors.sorted { $0.0 < $1.0 }.map { ($0.0, .number($0.1)) })
      out.member("covered")
      out.value(.number(f.frameCount))
      out.member("runs")
      out.value(.number(UInt64(f.runCount)))
      out.member("total")
      out.value(.number(f.totalFrames))
      out.close("}")
    } else {
      out.value(.null)
    }
    out.member("generation")
    out.value(.number(h.generation))
    out.member("kaslr_offset")
    out.value(address(k.kaslrOffset))
    out.member("kernel_release")
    out.value(.string(h.kernelRelease))
    out.member("metadata")
    out.open("{")
    for (i, (key, value)) in h.metadata.sorted(by: { $0.key < $1.key }).enumerated() {
      out.member(key, first: i == 0)
      out.value(.string(value))
    }
    out.close("}", empty: h.metadata.isEmpty)
    out.member("page_offset_base")
    out.value(address(k.pageOffsetBase?.rawValue))
    out.member("page_size")
    out.value(.number(UInt64(h.pageSize)))
    out.member("paging_levels")
    out.value(k.pagingLevels.map { .number(UInt64($0)) } ?? .null)
    out.member("partial")
    out.value(.bool(h.partial))
    out.member("phys_base")
    out.value(k.physBase.map { .string(signedHex(Int64(bitPattern: $0))) } ?? .null)
    out.member("published")
    out.value(.signed(h.published))
    out.member("region_size")
    out.value(.number(h.regionSize))
    out.member("text")
    out.value(address(k.text?.rawValue))
    out.member("used_size")
    out.value(.number(h.usedSize))
    out.member("vmalloc_base")
    out.value(address(k.vmallocBase?.rawValue))
    out.member("vmcoreinfo")
    if let v = k.vmcoreinfo {
      out.inline([("address", .string(hexAddress(v.address.rawValue))), ("size", .number(v.size))])
    } else {
      out.value(.null)
    }
    out.member("vmemmap_base")
    out.value(address(k.vmemmapBase?.rawValue))
    out.close("}")
    out.raw("\n")
    try out.flush()
  }

  static func text(_ h: HintSet, path: String) -> String {
    var s = "\(TerminalSafe.escaped(path)): hint region, generation \(h.generation), \(h.regionSize) bytes (\(h.usedSize) used)"
    s += h.partial ? ", PARTIAL\n" : ", complete\n"
    let when = Date(timeIntervalSince1970: TimeInterval(h.published))
    s += "published:        \(ISO8601DateFormatter().string(from: when)) (guest clock)\n"
    s += "kernel:           \(h.kernelRelease.isEmpty ? "?" : TerminalSafe.escaped(h.kernelRelease)), build id \(h.buildIDHex.isEmpty ? "?" : h.buildIDHex)\n"
    let k = h.kernel
    func line(_ name: String, _ v: UInt64?) {
      s += name.padding(toLength: 18, withPad: " ", startingAt: 0) + (v.map(hex) ?? "unknown") + "\n"
    }
    line("kaslr_offset:", k.kaslrOffset)
    line("_text:", k.text?.rawValue)
    line("phys_base:", k.physBase)
    line("page_offset_base:", k.pageOffsetBase?.rawValue)
    line("vmemmap_base:", k.vmemmapBase?.rawValue)
    line("vmalloc_base:", k.vmallocBase?.rawValue)
    s += "vmcoreinfo:       " + (k.vmcoreinfo.map { "\($0.address), \($0.size) bytes" } ?? "unknown") + "\n"
    s += "paging levels:    " + (k.pagingLevels.map { String($0) } ?? "unknown") + "\n"
    if let f = h.frames {
      s += "frames:           \(f.frameCount) of \(f.totalFrames) in \(f.runCount) runs\n"
      let totals = f.colorTotals()
      for c in Color.allCases where totals[Int(c.rawValue)] > 0 {
        let n = totals[Int(c.rawValue)]
        let mib = Double(n) * Double(h.pageSize) / 1048576
        s += "  " + c.name.padding(toLength: 14, withPad: " ", startingAt: 0)
          + String(n).leftPad(10) + " frames " + String(format: "%10.1f MiB", mib) + "\n"
      }
    } else {
      s += "frames:           none\n"
    }
    // Counted, not filtered: a copy of 150,000 file records would be most of the memory used.
    let withFrames = h.files.reduce(0) { $0 + ($1.framesKnown ? 1 : 0) }
    let pages = h.files.reduce(UInt64(0)) { $0 + $1.residentPages }
    s += "files:            \(h.files.count) cached (\(pages) pages), \(withFrames) with frames\n"
    for f in h.files.prefix(15) {
      s += "  " + String(f.residentPages).leftPad(9) + " pages  " + TerminalSafe.escaped(f.path) + "\n"
    }
    if h.files.count > 15 { s += "  ... \(h.files.count - 15) more (--json lists them all)\n" }
    s += "btf:              " + (h.btf.map { "\($0.size) bytes (zstd, \($0.data.count) published)" } ?? "none") + "\n"
    for (key, value) in h.metadata where key.hasPrefix("partial.") || key.hasPrefix("problem.") {
      s += "note: \(TerminalSafe.escaped(key)): \(TerminalSafe.escaped(value))\n"
    }
    return s
  }
}

extension String {
  func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

/// JSON written as it is produced, through a 64 KiB buffer, to a file descriptor (stdout):
/// for output whose size follows untrusted input (a hint region's file list). Objects and
/// arrays opened with `open` are spread over lines with two-space indents; `inline` writes a
/// small object on one line.
struct JSONStream {
  enum Value {
    case null
    case bool(Bool)
    case number(UInt64)
    case signed(Int64)
    case string(String)
  }

  private var buffer: [UInt8] = []
  private var depth = 0
  private let write: ([UInt8]) throws -> Void
  static let flushAt = 64 << 10

  init(write: @escaping ([UInt8]) throws -> Void) {
    self.write = write
    buffer.reserveCapacity(Self.flushAt + 4096)
  }

  /// To standard output.
  static func standardOutput() -> JSONStream {
    JSONStream { try FileHandle.standardOutput.write(contentsOf: Data($0)) }
  }

  mutating func raw(_ s: String) { buffer.append(contentsOf: s.utf8) }

  mutating func newline() {
    buffer.append(0x0A)
    buffer.append(contentsOf: repeatElement(0x20, count: 2 * depth))
  }

  mutating func open(_ bracket: String) {
    raw(bracket)
    depth += 1
  }

  /// Closes what `open` opened; `empty` when nothing was written inside.
  mutating func close(_ bracket: String, empty: Bool = false) {
    depth -= 1
    if !empty { newline() }
    raw(bracket)
  }

  /// A key of the object being written, on its own line.
  mutating func member(_ key: String, first: Bool = false) {
    if !first { raw(",") }
    newline()
    string(key)
    raw(": ")
  }

  mutating func value(_ v: Value) {
    switch v {
    case .null: raw("null")
    case .bool(let b): raw(b ? "true" : "false")
    case .number(let n): raw(String(n))
    case .signed(let n): raw(String(n))
    case .string(let s): string(s)
    }
  }

  /// An object on one line (`braces: false`: its members only, inside braces written by the
  /// caller).
  mutating func inline(_ members: [(String, Value)], braces: Bool = true) {
    if braces { raw("{") }
    for (i, (key, v)) in members.enumerated() {
      if i > 0 { raw(", ") }
      string(key)
      raw(": ")
      value(v)
    }
    if braces { raw("}") }
  }

  /// A JSON string: quotes, backslashes and control characters escaped, the rest as UTF-8.
  mutating func string(_ s: String) {
    buffer.append(0x22)
    for b in s.utf8 {
      switch b {
      case 0x22: raw("\\\"")
      case 0x5C: raw("\\\\")
      case 0x0A: raw("\\n")
      case 0x0D: raw("\\r")
      case 0x09: raw("\\t")
      case 0..<0x20:
        let hex = String(b, radix: 16)
        raw("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
      default: buffer.append(b)
      }
    }
    buffer.append(0x22)
  }

  mutating func flushIfFull() throws {
    if buffer.count >= Self.flushAt { try flush() }
  }

  mutating func flush() throws {
    guard !buffer.isEmpty else { return }
    try write(buffer)
    buffer.removeAll(keepingCapacity: true)
  }
}
