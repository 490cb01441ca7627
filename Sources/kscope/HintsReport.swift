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

  static func json(_ h: HintSet) -> [String: Any] {
    func num(_ v: UInt64?) -> Any { v.map { NSNumber(value: $0) } ?? NSNull() }
    // Addresses as "0x..." strings: JSON readers that hold numbers as doubles round them.
    func addr(_ v: UInt64?) -> Any { v.map(hexAddress) ?? NSNull() }
    let k = h.kernel
    var o: [String: Any] = [
      "generation": NSNumber(value: h.generation),
      "region_size": NSNumber(value: h.regionSize),
      "used_size": NSNumber(value: h.usedSize),
      "published": NSNumber(value: h.published),
      "partial": h.partial,
      "page_size": NSNumber(value: h.pageSize),
      "kernel_release": h.kernelRelease,
      "build_id": h.buildIDHex,
      "kaslr_offset": addr(k.kaslrOffset),
      "text": addr(k.text?.rawValue),
      "phys_base": k.physBase.map { signedHex(Int64(bitPattern: $0)) } ?? NSNull(),
      "page_offset_base": addr(k.pageOffsetBase?.rawValue),
      "vmemmap_base": addr(k.vmemmapBase?.rawValue),
      "vmalloc_base": addr(k.vmallocBase?.rawValue),
      "paging_levels": num(k.pagingLevels.map { UInt64($0) }),
      "vmcoreinfo": k.vmcoreinfo.map {
        ["address": hexAddress($0.address.rawValue), "size": NSNumber(value: $0.size)] as [String: Any]
      } ?? NSNull(),
    ]
    if let f = h.frames {
      var colors: [String: Any] = [:]
      for (code, n) in f.colorTotals().enumerated() where n > 0 {
        colors[Color(rawValue: UInt8(code))?.name ?? "code-\(code)"] = NSNumber(value: n)
      }
      o["frames"] = [
        "total": NSNumber(value: f.totalFrames), "covered": NSNumber(value: f.frameCount),
        "runs": f.runCount, "colors": colors,
      ] as [String: Any]
    } else {
      o["frames"] = NSNull()
    }
    o["files"] = h.files.map { f -> [String: Any] in
      [
        "path": f.path, "inode": NSNumber(value: f.inode), "device": deviceText(f.device),
        "size": NSNumber(value: f.size), "pages": NSNumber(value: f.residentPages),
        "frames_known": f.framesKnown, "truncated": f.extentsTruncated,
        "extents": f.extents.map { e -> [String: Any] in
          ["page": NSNumber(value: e.filePage), "pages": NSNumber(value: e.pages), "frame": num(e.frame?.rawValue)]
        },
      ]
    }
    o["btf"] = h.btf.map {
      ["compression": "zstd", "size": NSNumber(value: $0.size), "compressed_size": $0.data.count] as [String: Any]
    } ?? NSNull()
    var meta: [String: Any] = [:]
    for (key, value) in h.metadata { meta[key] = value }
    o["metadata"] = meta
    return o
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
