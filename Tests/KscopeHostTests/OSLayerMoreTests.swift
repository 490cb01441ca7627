import Foundation
import KscopeOS
import Testing

/// The KscopeOS pieces the agent and the VM layer moved onto (line and positioned reads,
/// directory listings, status, the shared mapping, signals, sockets), on small real files.
@Suite struct OSLayerMoreTests {
  func temporaryDirectory() throws -> String {
    let dir = NSTemporaryDirectory() + "kscope-os-\(ProcessUsage.id)-\(UInt32.random(in: 0...UInt32.max))"
    try Files.makeDirectory(dir)
    return dir
  }

  /// The hint reader's shrinking copy: filled from a file, read back, released a range at a
  /// time; a released page is never served again (an error, not the kernel's zeros).
  @Test func releasableCopyServesOnlyWhatWasNotReleased() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let page = 4096
    let bytes = (0..<(4 * page + 100)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
    try Files.writeAtomically(bytes, to: dir + "/f")
    let file = try OpenFile.open(dir + "/f")
    let copy = try ReleasableCopy(capacity: bytes.count, path: file.path)
    #expect(try copy.fill(from: file) == bytes.count)
    #expect(copy.read(at: 0, count: bytes.count) == bytes)
    #expect(copy.read(at: bytes.count - 1, count: 2) == nil)
    #expect(copy.read(at: -1, count: 1) == nil)
    // Only whole pages inside the range go: [100, 2 pages + 50) holds page 1 alone.
    copy.release(at: 100, count: 2 * page - 50)
    #expect(copy.releasedPages == 1)
    #expect(copy.read(at: 0, count: page) == Array(bytes[0..<page]))
    #expect(copy.read(at: 2 * page, count: 10) == Array(bytes[(2 * page)..<(2 * page + 10)]))
    #expect(copy.read(at: page - 1, count: 2) == nil)
    #expect(copy.read(at: page + 5, count: 1) == nil)
    copy.release(at: 0, count: bytes.count)
    #expect(copy.releasedPages == 4)  // the last, partial page is not inside the range's pages
    #expect(copy.read(at: 4 * page, count: 100) == Array(bytes[(4 * page)...]))
    #expect(copy.read(at: 0, count: 1) == nil)
    // Refilled, everything is served again.
    #expect(try copy.fill(from: file) == bytes.count)
    #expect(copy.read(at: page, count: page) == Array(bytes[page..<(2 * page)]))
  }

  @Test func linesArriveWholeCutOrLastWithoutNewline() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // A line longer than the 64 KiB buffer is handed over in pieces; the last line needs no
    // newline; an empty line is a line.
    let long = [UInt8](repeating: 0x41, count: 70_000)
    try Files.writeAtomically(Array("a b\n\n".utf8) + long + Array("\nlast".utf8), to: dir + "/f")
    var lines: [Int] = []
    #expect(Files.forEachLine(dir + "/f") { lines.append($0.count); return true })
    #expect(lines == [3, 0, 65_536, 70_000 - 65_536, 4])
    // Stopping early stops.
    var seen = 0
    #expect(Files.forEachLine(dir + "/f") { _ in seen += 1; return false })
    #expect(seen == 1)
    #expect(!Files.forEachLine(dir + "/missing") { _ in true })
  }

  @Test func positionedReadsAreShortOnlyAtTheEnd() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try Files.writeAtomically((0..<100).map { UInt8($0) }, to: dir + "/f")
    let fd = try #require(Files.openRead(dir + "/f", noFollow: true, nonBlocking: true))
    defer { Files.closeDescriptor(fd) }
    var buffer = [UInt8](repeating: 0, count: 16)
    #expect(Files.read(fd, into: &buffer, count: 16, at: 90) == 10)
    #expect(buffer[0..<10] == (90..<100).map { UInt8($0) }[...])
    #expect(Files.read(fd, into: &buffer, count: 8, at: 1000) == 0)
    #expect(Files.read(fd, into: &buffer, count: 17, at: 0) == nil)  // more than the buffer
    // A link is refused with noFollow, and its errno is reported.
    try FileManager.default.createSymbolicLink(atPath: dir + "/l", withDestinationPath: dir + "/f")
    #expect(Files.openRead(dir + "/l", noFollow: true) == nil)
    #expect(Files.lastErrno == ELOOP)
  }

  @Test func listingsAndStatusTellKindsAndIdentity() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try Files.writeAtomically("x", to: dir + "/file")
    try Files.makeDirectory(dir + "/sub")
    try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: "file")
    let entries = Files.listDirectory(dir).sorted { $0.name < $1.name }
    #expect(entries.map(\.name) == ["file", "link", "sub"])
    // d_type may be unknown on some file systems; stat always knows.
    for e in entries {
      let st = try #require(Files.status(dir + "/" + e.name))
      #expect(e.kind == nil || e.kind == st.kind)
    }
    #expect(Files.status(dir + "/link")?.kind == .symbolicLink)
    #expect(Files.status(dir + "/sub")?.kind == .directory)
    let file = try #require(Files.status(dir + "/file"))
    #expect(file.kind == .regular && file.size == 1)
    #expect(Files.listDirectory(dir, limit: 2).count == 2)
    #expect(Files.listDirectory(dir + "/missing").isEmpty)
    #expect(throws: FileError.self) { try Files.makeDirectory(dir + "/sub") }
    try Files.renameFile(dir + "/file", to: dir + "/moved")
    #expect(Files.status(dir + "/file") == nil && Files.status(dir + "/moved")?.inode == file.inode)
    // An exclusive create refuses an existing name.
    _ = try Files.createNew(dir + "/new")
    #expect(throws: FileError.self) { try Files.createNew(dir + "/new") }
  }

  @Test func sharedMappingCreatesChecksSizeAndIsShared() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    do {
      let m = try SharedMapping(path: dir + "/r", createSize: 8192, allowedSizes: 4096...16384)
      #expect(m.size == 8192)
      m.base.storeBytes(of: 0x5A, toByteOffset: 100, as: UInt8.self)
    }
    let bytes = try Files.read(dir + "/r")
    #expect(bytes.count == 8192 && bytes[100] == 0x5A)
    let again = try SharedMapping(path: dir + "/r", allowedSizes: 1...8192)
    #expect(Files.status(dir + "/r")?.inode == again.inode && again.size == 8192)
    // A size outside the allowed range is refused in one line, before any mapping.
    #expect(throws: FileError.self) { _ = try SharedMapping(path: dir + "/r", allowedSizes: 1...4096) }
    #expect(throws: FileError.self) { _ = try SharedMapping(path: dir + "/missing", allowedSizes: 1...4096) }
  }

  @Test func processLivenessAndSignals() throws {
    #expect(Signals.processExists(ProcessUsage.id))
    #expect(!Signals.processExists(Int32.max))
    // Nothing pending: the wait times out.
    #expect(Signals.wait(for: [Signals.user1], nanoseconds: 1_000_000) == nil)
  }

  @Test func socketsConnectOnlyToListeners() throws {
    #expect(throws: FileError.self) { try StreamSocket.unix(path: "/nonexistent/kscope.sock") }
    #expect(throws: FileError.self) {
      try StreamSocket.unix(path: "/tmp/" + String(repeating: "x", count: 200))
    }
    let port = try StreamSocket.freeLoopbackPort()
    #expect(port > 0)
  }
}
