import Foundation
import KscopeCore
import KscopeMaps
import KscopeOS
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// glibc's makedev(3).
func deviceNumber(_ major: UInt32, _ minor: UInt32) -> dev_t {
  let ma = UInt64(major)
  let mi = UInt64(minor)
  return dev_t(((ma & 0xfff) << 8) | ((ma & ~0xfff) << 32) | (mi & 0xff) | ((mi & ~0xff) << 12))
}

func fileKind(_ path: String) -> mode_t {
  var st = stat()
  return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0
}

/// `-o` may only replace a regular file or create one (issue 10, item 2).
@Suite struct AtomicWriteTests {
  @Test func specialFilesAreNeverReplaced() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    #expect(mkfifo(dir + "/fifo", 0o600) == 0)
    // A private copy of /dev/null's device node: what `-o /dev/null` would have replaced.
    #expect(mknod(dir + "/null", S_IFCHR | 0o600, deviceNumber(1, 3)) == 0)
    try "keep".write(toFile: dir + "/target", atomically: false, encoding: .utf8)
    try FileManager.default.createSymbolicLink(
      atPath: dir + "/link", withDestinationPath: dir + "/target")
    try FileManager.default.createDirectory(
      atPath: dir + "/sub", withIntermediateDirectories: false)
    for (name, kind) in [("fifo", S_IFIFO), ("null", S_IFCHR), ("link", S_IFLNK), ("sub", S_IFDIR)]
    {
      do {
        try Files.writeAtomically([1, 2, 3], to: dir + "/" + name)
        Issue.record("replaced \(name)")
      } catch {
        #expect(error.description.contains("not a regular file"), "\(error)")
        #expect(!error.description.contains("\n"))
      }
      #expect(fileKind(dir + "/" + name) == kind, "\(name) changed")
    }
    #expect(try String(contentsOfFile: dir + "/target", encoding: .utf8) == "keep")
    // No temporary left behind.
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == [
        "fifo", "link", "null", "sub", "target",
      ])
    // Regular files are replaced, new ones created.
    try Files.writeAtomically([7], to: dir + "/target")
    try Files.writeAtomically([8], to: dir + "/new")
    #expect(try Files.read(dir + "/target") == [7])
    #expect(try Files.read(dir + "/new") == [8])
  }

  @Test func readsRefuseSpecialFilesWithoutBlocking() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    #expect(mkfifo(dir + "/fifo", 0o600) == 0)
    // Opening a FIFO without a writer would block forever; reading /dev/zero would never end.
    for path in [dir + "/fifo", "/dev/zero"] {
      #expect(throws: FileError.self) { try Files.read(path, limit: 1 << 20) }
      #expect(throws: FileError.self) { try ColorMapFile.open(path) }
    }
    // A sparse 64 GiB "map" is refused from its size, before anything is read.
    let fd = open(dir + "/huge.kcm", O_WRONLY | O_CREAT, 0o600)
    #expect(ftruncate(fd, off_t(ColorMapFile.maxFileBytes) + 1) == 0)
    close(fd)
    let clock = ContinuousClock()
    let t = clock.now
    #expect { try ColorMapFile.open(dir + "/huge.kcm") } throws: { "\($0)".contains("more than") }
    #expect(clock.now - t < .seconds(1))
  }

  @Test func confinedDirectoriesDoNotFollowLinks() throws {
    let dir = try makeTempDir()
    let other = try makeTempDir()
    defer {
      cleanup(dir)
      cleanup(other)
    }
    try "secret".write(toFile: other + "/ram", atomically: false, encoding: .utf8)
    try "mine".write(toFile: dir + "/ram", atomically: false, encoding: .utf8)
    try FileManager.default.createSymbolicLink(atPath: dir + "/sub", withDestinationPath: other)
    try FileManager.default.createSymbolicLink(
      atPath: dir + "/hints", withDestinationPath: "/etc/shadow")
    try FileManager.default.createDirectory(
      atPath: dir + "/real", withIntermediateDirectories: false)
    try "inner".write(toFile: dir + "/real/x", atomically: false, encoding: .utf8)
    let d = try ConfinedDirectory(path: dir)
    #expect(try d.openFile("ram").readAll(limit: 100) == Array("mine".utf8))
    #expect(try d.openFile("real/x").readAll(limit: 100) == Array("inner".utf8))
    for name in [
      "sub/ram", "hints", "../" + (other as NSString).lastPathComponent + "/ram", "/etc/passwd",
      "real/../ram", "real//x", "",
    ] {
      do {
        _ = try d.openFile(name)
        Issue.record("opened \(name)")
      } catch {
        #expect(!error.description.contains("secret"))
        #expect(!error.description.contains("root:"))
      }
    }
    #expect { try d.openFile("hints") } throws: { "\($0)".contains("symbolic link") }
  }
}

/// Guest-controlled text is escaped, numbers from files never trap (issue 10, items 3 and 10).
@Suite struct HostileTextTests {
  @Test func controlCharactersAreEscaped() {
    #expect(TerminalSafe.escaped("plain /srv/www/index.html") == "plain /srv/www/index.html")
    #expect(
      TerminalSafe.escaped("a\u{1b}[2Jb\nc\r\t\u{7f}\u{9b}\u{202e}")
        == "a\\x1b[2Jb\\nc\\r\\t\\x7f\\x9b\\u{202e}")
    // Idempotent: a message escaped twice reads the same.
    let once = TerminalSafe.escaped("x\ny")
    #expect(TerminalSafe.escaped(once) == once)
    #expect(TerminalSafe.oneLine(String(repeating: "x", count: 10), limit: 4) == "xxxx...")
  }

  @Test func createdDatesOfAnyValueArePrinted() {
    #expect(Describe.utc(0) == "1970-01-01T00:00:00Z")
    #expect(Describe.utc(1_764_129_600) == "2025-11-26T04:00:00Z")
    #expect(Describe.utc(-86400) == "1969-12-31T00:00:00Z")
    for v in [Int64.min, Int64.min + 1, Int64.max, -62_167_219_201, 253_402_300_800] {
      #expect(Describe.utc(v).contains("out of range"))
    }
    #expect(Describe.utc(253_402_300_799) == "9999-12-31T23:59:59Z")
  }
}
