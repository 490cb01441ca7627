/// The manifest.json reader: a JSON reader for the manifest's fixed schema that decodes each
/// field straight from the file's bytes. Foundation's JSONDecoder held the document's tree
/// beside the decoded values (about 2x a 1 MiB manifest above the process's start, more in
/// some runs); this one holds the bytes and the fields, and every string is bounded by its raw
/// length before anything is allocated for it. Keys it does not know are skipped without being
/// decoded (nesting at most `maxDepth`), so padding costs nothing beyond the bytes.
struct ManifestReader {
  /// A manifest that does not parse, or a field of the wrong type or size. `what` is one line.
  struct Failure: Error { let what: String }

  /// Strings: a path is at most PATH_MAX bytes; nothing in a manifest is longer.
  static let maxString = 4096
  /// Keys: the schema's are at most 22 bytes.
  static let maxKey = 64
  /// The stored QEMU argv (a record: clones never use it) holds ~55 arguments, ~1.2 KB.
  static let maxArguments = 256
  static let maxArgumentBytes = 64 << 10
  /// Keys of one object of the schema (it has at most 17).
  static let maxMembers = 64
  /// Nesting of skipped (unknown) values.
  static let maxDepth = 32

  let bytes: UnsafeBufferPointer<UInt8>
  var at = 0

  init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

  func fail(_ why: String) -> Failure { Failure(what: "\(why) at byte \(at)") }

  mutating func skipSpace() {
    while at < bytes.count,
      bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09
    {
      at += 1
    }
  }

  /// Consumes `c` (after whitespace), or fails.
  mutating func expect(_ c: UInt8) throws(Failure) {
    skipSpace()
    guard at < bytes.count, bytes[at] == c else {
      throw fail(at < bytes.count ? "expected '\(Character(Unicode.Scalar(c)))'" : "unexpected end")
    }
    at += 1
  }

  /// Consumes `c` when it is next (after whitespace).
  mutating func take(_ c: UInt8) -> Bool {
    skipSpace()
    guard at < bytes.count, bytes[at] == c else { return false }
    at += 1
    return true
  }

  /// The end of the document: only whitespace may follow.
  mutating func end() throws(Failure) {
    skipSpace()
    guard at == bytes.count else { throw fail("bytes after the document") }
  }

  /// An object: `member(key)` must consume the key's value. A key may appear once.
  mutating func object(
    _ path: String, _ member: (inout ManifestReader, String) throws(Failure) -> Void
  ) throws(Failure) {
    guard take(0x7B) else { throw fail("wrong type at \(path) (not an object)") }
    if take(0x7D) { return }
    var seen: [String] = []
    repeat {
      skipSpace()
      let key = try string(limit: Self.maxKey, path.isEmpty ? "a key" : "a key of \(path)")
      guard !seen.contains(key) else { throw fail("\"\(key)\" appears twice") }
      // The schema's objects have at most 17 keys: the list of those seen stays small.
      guard seen.count < Self.maxMembers else {
        throw fail("\(path.isEmpty ? "the manifest" : path) has more than \(Self.maxMembers) keys")
      }
      seen.append(key)
      try expect(0x3A)
      try member(&self, key)
    } while take(0x2C)
    try expect(0x7D)
  }

  /// An array: `element(index)` consumes each element.
  mutating func array(
    _ path: String, _ element: (inout ManifestReader, Int) throws(Failure) -> Void
  ) throws(Failure) {
    guard take(0x5B) else { throw fail("wrong type at \(path) (not an array)") }
    if take(0x5D) { return }
    var i = 0
    repeat {
      try element(&self, i)
      i += 1
    } while take(0x2C)
    try expect(0x5D)
  }

  /// A string of at most `limit` bytes in the file (its decoded UTF-8 is never longer).
  mutating func string(limit: Int = maxString, _ path: String) throws(Failure) -> String {
    skipSpace()
    guard at < bytes.count, bytes[at] == 0x22 else {
      throw fail("wrong type at \(path) (not a string)")
    }
    let start = at + 1
    let (end, escaped) = try scanString(from: start)
    guard end - start <= limit else {
      throw fail("\(path) is a string of \(end - start) bytes (at most \(limit))")
    }
    at = end + 1
    let raw = UnsafeBufferPointer(rebasing: bytes[start..<end])
    if !escaped {
      // scanString checked the UTF-8.
      return String(decoding: raw, as: UTF8.self)
    }
    var out: [UInt8] = []
    out.reserveCapacity(raw.count)
    var i = 0
    while i < raw.count {
      let b = raw[i]
      guard b == 0x5C else {
        out.append(b)
        i += 1
        continue
      }
      let e = raw[i + 1]
      i += 2
      switch e {
      case 0x22, 0x5C, 0x2F: out.append(e)
      case 0x62: out.append(0x08)
      case 0x66: out.append(0x0C)
      case 0x6E: out.append(0x0A)
      case 0x72: out.append(0x0D)
      case 0x74: out.append(0x09)
      default:  // u: scanString checked the digits and the surrogate pairs
        var v = Self.hex4(raw, i)
        i += 4
        if (0xD800..<0xDC00).contains(v) {
          v = 0x10000 + ((v - 0xD800) << 10) + (Self.hex4(raw, i + 2) - 0xDC00)
          i += 6
        }
        out.append(contentsOf: Unicode.UTF8.encode(Unicode.Scalar(v)!)!)
      }
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Four hex digits at `i` (checked by `scanString`).
  static func hex4(_ raw: UnsafeBufferPointer<UInt8>, _ i: Int) -> UInt32 {
    var v: UInt32 = 0
    for k in 0..<4 { v = v << 4 | hexDigit(raw[i + k])! }
    return v
  }

  static func hexDigit(_ c: UInt8) -> UInt32? {
    switch c {
    case 0x30...0x39: UInt32(c - 0x30)
    case 0x61...0x66: UInt32(c - 0x61 + 10)
    case 0x41...0x46: UInt32(c - 0x41 + 10)
    default: nil
    }
  }

  /// Checks a string's syntax from the byte after its opening quote: escapes, no raw control
  /// characters, valid UTF-8 (no surrogates, nothing over U+10FFFF, shortest forms only).
  /// Returns the index of its closing quote and whether it holds escapes.
  func scanString(from start: Int) throws(Failure) -> (end: Int, escaped: Bool) {
    var i = start
    var escaped = false
    func bad(_ why: String) -> Failure {
      Failure(what: "\(why) in the string at byte \(start - 1)")
    }
    while i < bytes.count {
      let b = bytes[i]
      switch b {
      case 0x22: return (i, escaped)
      case 0x5C:
        escaped = true
        guard i + 1 < bytes.count else { throw bad("unexpected end") }
        switch bytes[i + 1] {
        case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74: i += 2
        case 0x75:
          guard let v = unicodeEscape(i) else { throw bad("a bad \\u escape") }
          if (0xDC00..<0xE000).contains(v) { throw bad("a lone surrogate") }
          if (0xD800..<0xDC00).contains(v) {
            guard i + 11 < bytes.count, bytes[i + 6] == 0x5C, bytes[i + 7] == 0x75,
              let low = unicodeEscape(i + 6), (0xDC00..<0xE000).contains(low)
            else { throw bad("a lone surrogate") }
            i += 12
          } else {
            i += 6
          }
        default: throw bad("an unknown escape")
        }
      case 0..<0x20: throw bad("a control character")
      case 0x20..<0x80: i += 1
      default:
        // UTF-8: the lead byte gives the length and the range of the second byte.
        let (n, lo, hi): (Int, UInt8, UInt8) =
          switch b {
          case 0xC2...0xDF: (2, 0x80, 0xBF)
          case 0xE0: (3, 0xA0, 0xBF)
          case 0xE1...0xEC, 0xEE...0xEF: (3, 0x80, 0xBF)
          case 0xED: (3, 0x80, 0x9F)
          case 0xF0: (4, 0x90, 0xBF)
          case 0xF1...0xF3: (4, 0x80, 0xBF)
          case 0xF4: (4, 0x80, 0x8F)
          default: (0, 0, 0)
          }
        guard n > 0, bytes.count - i >= n, (lo...hi).contains(bytes[i + 1]) else {
          throw bad("invalid UTF-8")
        }
        for k in 2..<n where !(0x80...0xBF).contains(bytes[i + k]) { throw bad("invalid UTF-8") }
        i += n
      }
    }
    throw Failure(what: "unterminated string at byte \(start - 1)")
  }

  /// The value of `\uXXXX` at `i` (the backslash), or nil.
  func unicodeEscape(_ i: Int) -> UInt32? {
    guard bytes.count - i >= 6 else { return nil }
    var v: UInt32 = 0
    for k in 2..<6 {
      guard let d = Self.hexDigit(bytes[i + k]) else { return nil }
      v = v << 4 | d
    }
    return v
  }

  /// The bytes of a JSON number (its grammar checked): `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
  mutating func numberToken(_ path: String) throws(Failure) -> (
    token: UnsafeBufferPointer<UInt8>, integer: Bool
  ) {
    skipSpace()
    let start = at
    func digits() -> Int {
      let s = at
      while at < bytes.count, (0x30...0x39).contains(bytes[at]) { at += 1 }
      return at - s
    }
    if at < bytes.count, bytes[at] == 0x2D { at += 1 }
    let intStart = at
    let n = digits()
    guard n > 0, n == 1 || bytes[intStart] != 0x30 else {
      at = start
      throw fail("wrong type at \(path) (not a number)")
    }
    var integer = true
    if at < bytes.count, bytes[at] == 0x2E {
      at += 1
      integer = false
      guard digits() > 0 else { throw fail("a bad number") }
    }
    if at < bytes.count, bytes[at] == 0x65 || bytes[at] == 0x45 {
      at += 1
      integer = false
      if at < bytes.count, bytes[at] == 0x2B || bytes[at] == 0x2D { at += 1 }
      guard digits() > 0 else { throw fail("a bad number") }
    }
    guard at - start <= 64 else { throw fail("\(path) is a number of \(at - start) digits") }
    return (UnsafeBufferPointer(rebasing: bytes[start..<at]), integer)
  }

  /// A non-negative integer that fits 64 bits.
  mutating func uint64(_ path: String) throws(Failure) -> UInt64 {
    let (t, integer) = try numberToken(path)
    guard integer, t.first != 0x2D else {
      throw fail("wrong type at \(path) (not an unsigned integer)")
    }
    var v: UInt64 = 0
    for c in t {
      let (m, o1) = v.multipliedReportingOverflow(by: 10)
      let (s, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
      guard !o1, !o2 else { throw fail("\(path) does not fit 64 bits") }
      v = s
    }
    return v
  }

  /// An integer that fits `Int`.
  mutating func int(_ path: String) throws(Failure) -> Int {
    let (t, integer) = try numberToken(path)
    guard integer else { throw fail("wrong type at \(path) (not an integer)") }
    let negative = t.first == 0x2D
    var v = 0
    for c in t.dropFirst(negative ? 1 : 0) {
      let (m, o1) = v.multipliedReportingOverflow(by: 10)
      let d = Int(c - 0x30)
      let (s, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
      guard !o1, !o2 else { throw fail("\(path) does not fit 64 bits") }
      v = s
    }
    return v
  }

  /// Any number, as a Double (out-of-range exponents refused).
  mutating func double(_ path: String) throws(Failure) -> Double {
    let (t, _) = try numberToken(path)
    guard let v = Double(String(decoding: t, as: UTF8.self)), v.isFinite else {
      throw fail("\(path) is not a finite number")
    }
    return v
  }

  mutating func bool(_ path: String) throws(Failure) -> Bool {
    if literal("true") { return true }
    if literal("false") { return false }
    throw fail("wrong type at \(path) (not true or false)")
  }

  /// Consumes a literal word when it is next.
  mutating func literal(_ word: StaticString) -> Bool {
    skipSpace()
    let n = word.utf8CodeUnitCount
    guard bytes.count - at >= n else { return false }
    for k in 0..<n where bytes[at + k] != word.utf8Start[k] { return false }
    at += n
    return true
  }

  /// Skips a value of a key the schema does not have, checking its syntax, decoding nothing.
  mutating func skipValue(depth: Int = 0) throws(Failure) {
    guard depth < Self.maxDepth else { throw fail("values nested deeper than \(Self.maxDepth)") }
    skipSpace()
    guard at < bytes.count else { throw fail("unexpected end") }
    switch bytes[at] {
    case 0x22:
      at = try scanString(from: at + 1).end + 1
    case 0x7B:
      at += 1
      if take(0x7D) { return }
      repeat {
        skipSpace()
        guard at < bytes.count, bytes[at] == 0x22 else { throw fail("expected a key") }
        at = try scanString(from: at + 1).end + 1
        try expect(0x3A)
        try skipValue(depth: depth + 1)
      } while take(0x2C)
      try expect(0x7D)
    case 0x5B:
      at += 1
      if take(0x5D) { return }
      repeat { try skipValue(depth: depth + 1) } while take(0x2C)
      try expect(0x5D)
    default:
      if literal("true") || literal("false") || literal("null") { return }
      _ = try numberToken("a value")
    }
  }
}

extension SnapshotManifest {
  /// Decodes the manifest's fields from its JSON bytes (`ManifestReader`); the checks of
  /// `validate` come after. Every field is required; unknown keys are skipped.
  static func read(_ bytes: UnsafeBufferPointer<UInt8>) throws(ManifestReader.Failure)
    -> SnapshotManifest
  {
    var r = ManifestReader(bytes)
    var format: String?
    var vmName: String?
    var ram: String?
    var hints: String?
    var deviceState: String?
    var ramSize: UInt64?
    var hintSize: UInt64?
    var cpus: Int?
    var layout: [GuestRAMRegion]?
    var kernel: Kernel?
    var image: Image?
    var argv: [String]?
    var pausedAt: String?
    var completedAt: String?
    var stateSeconds: Double?
    var copySeconds: Double?
    var copied: UInt64?
    var freePageReporting: Bool?
    try r.object("") { (r, key) throws(ManifestReader.Failure) in
      switch key {
      case "format": format = try r.string(key)
      case "vm_name": vmName = try r.string(key)
      case "ram": ram = try r.string(key)
      case "hints": hints = try r.string(key)
      case "device_state": deviceState = try r.string(key)
      case "ram_size": ramSize = try r.uint64(key)
      case "hint_size": hintSize = try r.uint64(key)
      case "cpus": cpus = try r.int(key)
      case "memory_layout":
        var regions: [GuestRAMRegion] = []
        try r.array(key) { (r, i) throws(ManifestReader.Failure) in
          // A bound on what is decoded; `checkLayout` refuses more than `maxRegions` after.
          guard i < 64 else { throw r.fail("memory_layout has more than 64 regions") }
          regions.append(try readRegion(&r, "memory_layout.\(i)"))
        }
        layout = regions
      case "kernel": kernel = try readKernel(&r)
      case "image": image = try readImage(&r)
      case "qemu_command_line":
        var a: [String] = []
        var total = 0
        try r.array(key) { (r, i) throws(ManifestReader.Failure) in
          guard i < ManifestReader.maxArguments else {
            throw r.fail("qemu_command_line has more than \(ManifestReader.maxArguments) arguments")
          }
          let s = try r.string("qemu_command_line.\(i)")
          total += s.utf8.count
          guard total <= ManifestReader.maxArgumentBytes else {
            throw r.fail("qemu_command_line has more than \(ManifestReader.maxArgumentBytes) bytes")
          }
          a.append(s)
        }
        argv = a
      case "paused_at": pausedAt = try r.string(key)
      case "completed_at": completedAt = try r.string(key)
      case "device_state_seconds": stateSeconds = try r.double(key)
      case "ram_copy_seconds": copySeconds = try r.double(key)
      case "ram_bytes_copied": copied = try r.uint64(key)
      // Optional: written only for parents with a free-page-reporting balloon.
      case "free_page_reporting": freePageReporting = try r.bool(key)
      default: try r.skipValue()
      }
    }
    try r.end()
    func need<T>(_ v: T?, _ key: String) throws(ManifestReader.Failure) -> T {
      guard let v else { throw ManifestReader.Failure(what: "missing \"\(key)\"") }
      return v
    }
    var manifest = SnapshotManifest(
      format: try need(format, "format"), vmName: try need(vmName, "vm_name"),
      ram: try need(ram, "ram"),
      hints: try need(hints, "hints"), deviceState: try need(deviceState, "device_state"),
      ramSize: try need(ramSize, "ram_size"), hintSize: try need(hintSize, "hint_size"),
      cpus: try need(cpus, "cpus"), memoryLayout: try need(layout, "memory_layout"),
      kernel: try need(kernel, "kernel"), image: try need(image, "image"),
      qemuCommandLine: try need(argv, "qemu_command_line"),
      pausedAt: try need(pausedAt, "paused_at"),
      completedAt: try need(completedAt, "completed_at"),
      deviceStateSeconds: try need(stateSeconds, "device_state_seconds"),
      ramCopySeconds: try need(copySeconds, "ram_copy_seconds"),
      ramBytesCopied: try need(copied, "ram_bytes_copied"))
    manifest.freePageReporting = freePageReporting
    return manifest
  }

  static func readRegion(_ r: inout ManifestReader, _ path: String) throws(ManifestReader.Failure)
    -> GuestRAMRegion
  {
    var start: UInt64?
    var size: UInt64?
    var offset: UInt64?
    try r.object(path) { (r, key) throws(ManifestReader.Failure) in
      switch key {
      case "guest_physical_start": start = try r.uint64("\(path).\(key)")
      case "size": size = try r.uint64("\(path).\(key)")
      case "file_offset": offset = try r.uint64("\(path).\(key)")
      default: try r.skipValue()
      }
    }
    guard let start, let size, let offset else {
      throw ManifestReader.Failure(what: "missing a field of \(path)")
    }
    return GuestRAMRegion(guestPhysicalStart: start, size: size, fileOffset: offset)
  }

  static func readKernel(_ r: inout ManifestReader) throws(ManifestReader.Failure) -> Kernel {
    var series: String?
    var release: String?
    var version: String?
    var buildID: String?
    var directory: String?
    try r.object("kernel") { (r, key) throws(ManifestReader.Failure) in
      switch key {
      case "series": series = try r.string("kernel.series")
      case "release": release = try r.string("kernel.release")
      case "version": version = try r.string("kernel.version")
      case "build_id": buildID = try r.string("kernel.build_id")
      case "directory": directory = try r.string("kernel.directory")
      default: try r.skipValue()
      }
    }
    guard let series, let release, let version, let buildID, let directory else {
      throw ManifestReader.Failure(what: "missing a field of kernel")
    }
    return Kernel(
      series: series, release: release, version: version, buildID: buildID, directory: directory)
  }

  static func readImage(_ r: inout ManifestReader) throws(ManifestReader.Failure) -> Image {
    var key: String?
    var workload: String?
    var initramfs: String?
    var dataDisk: String?
    var olap: Int?
    var agent: Bool?
    try r.object("image") { (r, k) throws(ManifestReader.Failure) in
      switch k {
      case "key": key = try r.string("image.key")
      case "workload": workload = try r.string("image.workload")
      case "initramfs": initramfs = try r.string("image.initramfs")
      case "data_disk": dataDisk = try r.string("image.data_disk")
      case "olap_mib": olap = try r.int("image.olap_mib")
      case "has_agent": agent = try r.bool("image.has_agent")
      default: try r.skipValue()
      }
    }
    guard let key, let workload, let initramfs, let dataDisk, let olap, let agent else {
      throw ManifestReader.Failure(what: "missing a field of image")
    }
    return Image(
      key: key, workload: workload, initramfs: initramfs, dataDisk: dataDisk, olapMiB: olap,
      hasAgent: agent)
  }
}
