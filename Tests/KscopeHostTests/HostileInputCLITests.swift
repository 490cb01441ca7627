import Foundation
import KscopeCore
import KscopeMaps
import KscopeTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A failure a user sees: non-zero exit (not a trap), one line on stderr.
func expectCleanFailure(
  _ r: ProgramRun, contains words: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(r.status == 1, "exit \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
  let lines = r.stderr.split(separator: "\n")
  #expect(lines.count == 1, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
  #expect(!r.stderr.contains("NSCocoaErrorDomain"), sourceLocation: sourceLocation)
  if let words {
    #expect(r.stderr.contains(words), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
  }
}

/// A snapshot directory with a manifest (as a JSON object, so tests can forge any field) and
/// sparse files of the right sizes.
func writeSnapshot(_ dir: String, edit: (inout [String: Any]) -> Void = { _ in }) throws {
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  var m: [String: Any] = [
    "format": "kscope-snapshot/1", "vm_name": "p", "ram": "ram", "hints": "hints",
    "device_state": "device.state", "ram_size": 128 << 20, "hint_size": 1 << 20, "cpus": 1,
    "memory_layout": [["guest_physical_start": 0, "size": 128 << 20, "file_offset": 0]],
    "kernel": [
      "series": "6.1", "release": "6.1.0-56-cloud-amd64", "version": "#1",
      "build_id": "0123456789abcdef",
      "directory": "/nonexistent",
    ],
    "image": [
      "key": "0123456789abcdef", "workload": "web", "initramfs": "/x", "data_disk": "/y",
      "olap_mib": 200,
      "has_agent": false,
    ],
    "qemu_command_line": ["qemu-system-x86_64"], "paused_at": "", "completed_at": "",
    "device_state_seconds": 0.0, "ram_copy_seconds": 0.0, "ram_bytes_copied": 0,
  ]
  edit(&m)
  try JSONSerialization.data(withJSONObject: m).write(
    to: URL(fileURLWithPath: dir + "/manifest.json"))
  for (name, size) in [("ram", 128 << 20), ("hints", 1 << 20), ("device.state", 16)] {
    let fd = open(dir + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    ftruncate(fd, off_t(size))
    close(fd)
  }
}

@Suite struct HostileInputCLITests {
  @Test func mapInfoOnAFIFOOrADeviceFailsAtOnce() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    #expect(mkfifo(dir + "/fifo", 0o600) == 0)
    for path in [dir + "/fifo", "/dev/zero"] {
      let r = try runKscope(["map", "info", path], timeout: 10)
      #expect(!r.timedOut, "map info \(path) hung")
      expectCleanFailure(r, contains: "not a regular file")
    }
  }

  @Test func mapInfoPrintsAnyCreatedDateAndEscapesMetadata() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let map = ColorMap(
      header: ColorMapHeader(
        sources: [.kernelPageFlags], created: Int64.min, kernelRelease: "6.1\u{1b}[2J\nfake: line",
        metadata: [("source.path", "/tmp/\u{1b}]0;owned\u{7}x")]),
      entries: [UInt16](repeating: FrameEntry(.free).rawValue, count: 16), extents: [])
    try ColorMapFile.write(map, to: dir + "/m.kcm")
    let r = try runKscope(["map", "info", dir + "/m.kcm"], timeout: 30)
    #expect(r.status == 0, "\(r.status) \(r.stderr)")
    #expect(r.stdout.contains("out of range"))
    #expect(!r.stdout.contains("\u{1b}"))
    #expect(!r.stdout.contains("\u{7}"))
    #expect(r.stdout.contains("\\x1b[2J\\nfake: line"))
    let j = try runKscope(["map", "info", dir + "/m.kcm", "--json"], timeout: 30)
    #expect(j.status == 0)
  }

  @Test func outputFlagNeverReplacesSpecialFiles() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    _ = try writeSampleMap(dir + "/a.kcm")
    #expect(mkfifo(dir + "/fifo", 0o600) == 0)
    #expect(mknod(dir + "/full", S_IFCHR | 0o600, deviceNumber(1, 7)) == 0)
    try FileManager.default.createSymbolicLink(
      atPath: dir + "/link", withDestinationPath: dir + "/a.kcm")
    for (name, kind) in [("fifo", S_IFIFO), ("full", S_IFCHR), ("link", S_IFLNK)] {
      let r = try runKscope(
        ["map", "render", dir + "/a.kcm", "-o", dir + "/" + name], timeout: 30)
      #expect(!r.timedOut)
      expectCleanFailure(r, contains: "not a regular file")
      #expect(fileKind(dir + "/" + name) == kind)
      let c = try runKscope(
        ["color", "--kpageflags", dir + "/a.kcm", "-o", dir + "/" + name], timeout: 30)
      #expect(c.status != 0)
      #expect(fileKind(dir + "/" + name) == kind)
    }
  }

  @Test func errorsStayOnOneLine() throws {
    let r = try runKscope(["map", "info", "/nonexistent/a\nb\u{1b}[31m.kcm"], timeout: 10)
    expectCleanFailure(r)
    #expect(!r.stderr.contains("\u{1b}"))
  }

  @Test func hostileSnapshotNumbersAreRefusedNotTrapped() throws {
    let edits: [(String, (inout [String: Any]) -> Void)] = [
      (
        "page-aligned",
        {
          $0["memory_layout"] = [["guest_physical_start": 0, "size": 1, "file_offset": UInt64.max]]
        }
      ),
      (
        "physical address",
        {
          $0["memory_layout"] = [
            ["guest_physical_start": UInt64.max - 4095, "size": 128 << 20, "file_offset": 0]
          ]
        }
      ),
      ("cpus", { $0["cpus"] = -1 }),
      ("cpus", { $0["cpus"] = 1000 }),
      ("hint_size", { $0["hint_size"] = 0 }),
      (
        "build_id",
        {
          $0["kernel"] = [
            "series": "6.1", "release": "6.1.0-56-cloud-amd64", "version": "#1",
            "build_id": "../../../../tmp/x", "directory": "/",
          ]
        }
      ),
      ("plain file name", { $0["ram"] = "sub/ram" }),
    ]
    for (words, edit) in edits {
      let dir = try makeTempDir()
      defer { cleanup(dir) }
      try writeSnapshot(dir + "/snap", edit: edit)
      let r = try runKscope(
        ["color", dir + "/snap", "-o", dir + "/out.kcm"], timeout: 30)
      #expect(!r.timedOut)
      expectCleanFailure(r, contains: words)
      #expect(!FileManager.default.fileExists(atPath: dir + "/out.kcm"))
    }
  }

  @Test func snapshotLinksAreRefused() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    try writeSnapshot(dir + "/snap")
    try "root:SECRET-CONTENT:19000:0:99999:7:::\n".write(
      toFile: dir + "/shadow", atomically: false, encoding: .utf8)
    try FileManager.default.removeItem(atPath: dir + "/snap/hints")
    try FileManager.default.createSymbolicLink(
      atPath: dir + "/snap/hints", withDestinationPath: dir + "/shadow")
    for args in [
      ["hints", "read", dir + "/snap"], ["color", dir + "/snap", "-o", dir + "/o.kcm"],
    ] {
      let r = try runKscope(args, timeout: 30)
      expectCleanFailure(r, contains: "symbolic link")
      #expect(!r.stderr.contains("SECRET") && !r.stdout.contains("SECRET"))
    }
    // A manifest.json link is not followed either.
    try writeSnapshot(dir + "/snap2")
    try FileManager.default.moveItem(atPath: dir + "/snap2/manifest.json", toPath: dir + "/m.json")
    try FileManager.default.createSymbolicLink(
      atPath: dir + "/snap2/manifest.json", withDestinationPath: dir + "/m.json")
    for args in [
      ["hints", "read", dir + "/snap2"], ["color", dir + "/snap2", "-o", dir + "/o.kcm"],
    ] {
      let r = try runKscope(args, timeout: 30)
      expectCleanFailure(r, contains: "symbolic link")
    }
  }

  @Test func hintsReadEscapesGuestStrings() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let content = HintContent(
      kernelRelease: "6.1.0-56-cloud-amd64", buildID: Array(0..<20), published: 1_790_000_000,
      kernel: KernelSymbolHints(), frames: nil,
      files: [
        CachedFile(
          path: "/data/\u{1b}]0;pwned\u{7}\nfake line", device: 1, inode: 12, size: 4096,
          residentPages: 1,
          extents: [FileExtent(filePage: 0, pages: 1)], framesKnown: false)
      ],
      metadata: [("problem.x", "bad\u{1b}[31m")])
    let e = try HintFormat.encode(content, regionSize: 1 << 16, generation: 2)
    try Data(e.bytes + [UInt8](repeating: 0, count: (1 << 16) - e.bytes.count)).write(
      to: URL(fileURLWithPath: dir + "/region"))
    let r = try runKscope(["hints", "read", dir + "/region"], timeout: 30)
    #expect(r.status == 0, "\(r.stderr)")
    #expect(!r.stdout.contains("\u{1b}"))
    #expect(!r.stdout.contains("\u{7}"))
    #expect(r.stdout.contains("\\x1b]0;pwned\\x07\\nfake line"))
  }
}
