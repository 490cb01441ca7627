import Foundation
import KscopeCore

/// A Debian cloud kernel unpacked by `host/fetch-kernels.sh` into
/// `$KSCOPE_CACHE/kernels/<version>/` (default cache /var/cache/kscope), with a symlink per series
/// (`kernels/6.1`, `kernels/6.12`) to the exact version resolved at install time.
public struct GuestKernel: Codable, Equatable, Sendable {
  /// "6.1" or "6.12".
  public var series: String
  /// `uname -r` of the guest, e.g. "6.1.0-56-cloud-amd64".
  public var release: String
  /// `uname -v` of the guest, e.g. "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)".
  public var version: String
  /// GNU build-id of the vmlinux, lowercase hex (what the analyzer matches a RAM image against).
  public var buildID: String
  /// The unpacked directory: vmlinuz, vmlinux, modules/.
  public var directory: String

  public static let supportedSeries = SnapshotManifest.kernelSeries

  /// kscope's cache on this host: $KSCOPE_CACHE, default /var/cache/kscope (kernels/, layouts/,
  /// lib/ for the shim, agent/ for the static agent; host/setup.sh fills it).
  public static func kscopeCache() -> String {
    let env = ProcessInfo.processInfo.environment["KSCOPE_CACHE"]
    return env?.isEmpty == false ? env! : "/var/cache/kscope"
  }

  public static func cacheRoot() -> String { kscopeCache() + "/kernels" }

  public var vmlinuz: String { directory + "/vmlinuz" }
  public var vmlinux: String { directory + "/vmlinux" }
  public var modules: String { directory + "/modules" }

  /// What `--kernel` accepts: a series ("6.1", "6.12": the release pinned in
  /// host/kernels.lock), "<series>-latest" (Debian's newest, after `host/fetch-kernels.sh
  /// --latest <series>`), or an exact cached release such as "6.1.0-57-cloud-amd64".
  public static let nameHelp =
    "6.1 or 6.12 (the release pinned in host/kernels.lock), 6.1-latest or 6.12-latest (Debian's newest, after host/fetch-kernels.sh --latest), or an exact cached release (6.1.0-57-cloud-amd64)"

  /// The series of a kernel name, or nil when it names none of the supported ones.
  public static func series(of name: String) -> String? {
    if supportedSeries.contains(name) { return name }
    for s in supportedSeries where name == s + "-latest" { return s }
    // An exact release: "6.1.0-57-cloud-amd64" is 6.1, "6.12.117+deb12-cloud-amd64" is 6.12.
    guard name.hasSuffix("-cloud-amd64"), name.count < 64,
      name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".+-".contains($0)) })
    else { return nil }
    let parts = name.split(separator: ".", maxSplits: 2)
    guard parts.count == 3 else { return nil }
    let candidate = "\(parts[0]).\(parts[1].prefix { $0.isNumber })"
    return supportedSeries.contains(candidate) ? candidate : nil
  }

  /// Resolves a kernel name (see `nameHelp`) through the cache and reads release, version and
  /// build-id.
  public static func resolve(series name: String) throws -> GuestKernel {
    guard let series = series(of: name) else {
      throw VMError.invalidArgument("unknown kernel '\(name)' (expected \(nameHelp))")
    }
    let link = cacheRoot() + "/" + name
    let fm = FileManager.default
    let target: String
    if name.hasSuffix("-cloud-amd64") {
      target = name
    } else if let t = try? fm.destinationOfSymbolicLink(atPath: link) {
      target = t
    } else {
      let fetch = name.hasSuffix("-latest") ? "--latest \(series)" : series
      throw VMError.missingPrerequisite(
        "kernel \(name) is not in \(cacheRoot()) (run host/setup.sh or host/fetch-kernels.sh \(fetch))"
      )
    }
    let dir = target.hasPrefix("/") ? target : cacheRoot() + "/" + target
    for f in ["vmlinuz", "vmlinux", "modules", ".complete"]
    where !fm.fileExists(atPath: dir + "/" + f) {
      throw VMError.missingPrerequisite(
        "kernel \(name) in \(dir) is incomplete: no \(f) (rerun host/fetch-kernels.sh \(name))")
    }
    let release =
      (try? String(contentsOfFile: dir + "/version", encoding: .utf8))?
      .trimmingCharacters(in: .whitespacesAndNewlines) ?? target
    let banner = try bzImageVersionString(dir + "/vmlinuz")
    // The banner is "<release> (<builder>) <uname -v>": uname -v starts at the first '#'.
    let version = banner.firstIndex(of: "#").map { String(banner[$0...]) } ?? banner
    let buildID = try ELFNotes.gnuBuildID(path: dir + "/vmlinux")
    return GuestKernel(
      series: series, release: release, version: version, buildID: buildID, directory: dir)
  }
}

extension GuestKernel {
  /// The cached kernel whose vmlinux has GNU build id `buildID` (what a snapshot names), tried
  /// first under `release`, then every complete kernel in the cache. A build id that matches
  /// no kernel is refused: a clone boots only kscope's own kernels.
  public static func find(buildID: String, release: String? = nil) throws -> GuestKernel {
    guard SnapshotManifest.isBuildID(buildID) else {
      throw VMError.badSnapshot("kernel build id '\(TerminalSafe.oneLine(buildID, limit: 200))' is not hexadecimal")
    }
    let fm = FileManager.default
    var names = ((try? fm.contentsOfDirectory(atPath: cacheRoot())) ?? []).sorted()
    if let release, let i = names.firstIndex(of: release) { names.swapAt(0, i) }
    for name in names where name.hasSuffix("-cloud-amd64") && series(of: name) != nil {
      let dir = cacheRoot() + "/" + name
      guard fm.fileExists(atPath: dir + "/.complete"),
        (try? ELFNotes.gnuBuildID(path: dir + "/vmlinux")) == buildID
      else { continue }
      return try resolve(series: name)
    }
    throw VMError.badSnapshot(
      "no cached kernel has build id \(buildID) (fetch that kernel with host/fetch-kernels.sh)")
  }
}

/// The kernel version string of an x86 bzImage: the setup header ("HdrS" at 0x202) holds at
/// 0x20e a 16-bit pointer to it, relative to 0x200 (Linux boot protocol, `kernel_version`).
func bzImageVersionString(_ path: String) throws -> String {
  guard let fh = FileHandle(forReadingAtPath: path) else {
    throw VMError.missingPrerequisite("cannot read \(path)")
  }
  defer { try? fh.close() }
  let head = fh.readData(ofLength: 0x8000)
  guard head.count > 0x210, head[0x202..<0x206] == Data("HdrS".utf8) else {
    throw VMError.invalidArgument("\(path) is not a bzImage")
  }
  let ptr = Int(head[0x20e]) | Int(head[0x20f]) << 8
  let start = ptr + 0x200
  guard start < head.count else { throw VMError.invalidArgument("\(path): bad kernel_version") }
  let bytes = head[start...].prefix(while: { $0 != 0 }).prefix(512)
  return String(decoding: bytes, as: UTF8.self)
}

/// Reads ELF notes without loading the file: only the ELF header, the section headers and the
/// SHT_NOTE sections are read (a debug vmlinux is ~600 MB).
public enum ELFNotes {
  public struct Note: Equatable {
    public var name: String
    public var type: UInt32
    public var descriptor: [UInt8]
  }

  /// The NT_GNU_BUILD_ID (type 3, owner "GNU") descriptor as lowercase hex.
  public static func gnuBuildID(path: String) throws -> String {
    guard let note = try notes(path: path).first(where: { $0.name == "GNU" && $0.type == 3 }) else {
      throw VMError.invalidArgument("\(path) has no GNU build-id note")
    }
    return note.descriptor.map { String(format: "%02x", $0) }.joined()
  }

  public static func notes(path: String) throws -> [Note] {
    guard let fh = FileHandle(forReadingAtPath: path) else {
      throw VMError.invalidArgument("cannot read \(path)")
    }
    defer { try? fh.close() }
    func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
      try fh.seek(toOffset: offset)
      let d = fh.readData(ofLength: count)
      guard d.count == count else { throw VMError.invalidArgument("\(path): truncated ELF") }
      return [UInt8](d)
    }
    let header = try read(0, 64)
    let shoff = le64(header, 0x28)
    let shentsize = Int(le16(header, 0x3a))
    let shnum = Int(le16(header, 0x3c))
    guard shnum > 0, shnum < 65536, shentsize >= 64 else { return [] }
    let table = try read(shoff, shentsize * shnum)
    return try sectionNotes(elfHeader: header, sectionTable: table) { try read($0, $1) }
  }

  /// The pure part: given the 64-byte header and the section header table, reads each SHT_NOTE
  /// section through `read` and parses its notes. ELF64 little-endian only (x86_64 guests).
  static func sectionNotes(
    elfHeader h: [UInt8], sectionTable: [UInt8], read: (UInt64, Int) throws -> [UInt8]
  ) throws -> [Note] {
    guard h.count >= 64, h[0..<4] == [0x7f, 0x45, 0x4c, 0x46] else {
      throw VMError.invalidArgument("not an ELF file")
    }
    guard h[4] == 2, h[5] == 1 else { throw VMError.invalidArgument("not ELF64 little-endian") }
    let entsize = Int(le16(h, 0x3a))
    var result: [Note] = []
    for i in 0..<(sectionTable.count / entsize) {
      let s = Array(sectionTable[(i * entsize)..<(i * entsize + 64)])
      guard le32(s, 4) == 7 else { continue }  // SHT_NOTE
      let size = le64(s, 0x20)
      guard size > 0, size < 1 << 20 else { continue }
      result += parseNotes(try read(le64(s, 0x18), Int(size)))
    }
    return result
  }

  /// Parses a note area: namesz, descsz, type, then name and descriptor each padded to 4 bytes.
  static func parseNotes(_ b: [UInt8]) -> [Note] {
    var notes: [Note] = []
    var off = 0
    while off + 12 <= b.count {
      let namesz = Int(le32(b, off))
      let descsz = Int(le32(b, off + 4))
      let type = le32(b, off + 8)
      let nameStart = off + 12
      let descStart = nameStart + (namesz + 3) / 4 * 4
      let end = descStart + (descsz + 3) / 4 * 4
      guard namesz < 4096, descsz < 1 << 16, descStart + descsz <= b.count else { break }
      let name = String(
        decoding: b[nameStart..<(nameStart + namesz)].prefix(while: { $0 != 0 }), as: UTF8.self)
      notes.append(
        Note(name: name, type: type, descriptor: Array(b[descStart..<(descStart + descsz)])))
      off = end
    }
    return notes
  }

  static func le16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
  static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) }
  }
  static func le64(_ b: [UInt8], _ o: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) }
  }
}
