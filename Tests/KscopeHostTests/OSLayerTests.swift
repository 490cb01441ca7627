import Foundation
import KscopeOS
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// KscopeOS's shared pieces, on small real files (no mocks: a temporary directory on the
/// host's file system, which supports SEEK_DATA on ext4, xfs and tmpfs).
@Suite struct OSLayerTests {
  @Test func zeroBlockTest() {
    for n in [0, 1, 7, 63, 64, 65, 4096, 4099] {
      var bytes = [UInt8](repeating: 0, count: n)
      #expect(bytes.withUnsafeBytes { Memory.isZero($0) })
      // One non-zero byte anywhere, head, middle or tail, makes it non-zero.
      for at in Set([0, n / 2, n - 1]) where n > 0 {
        bytes[at] = 0x80
        #expect(!bytes.withUnsafeBytes { Memory.isZero($0) }, "\(n) bytes, byte \(at)")
        bytes[at] = 0
      }
    }
  }

  @Test func findAndCompare() {
    let hay = Array("abcabdxxabd".utf8)
    hay.withUnsafeBytes { raw in
      #expect(Memory.find(Array("abd".utf8), in: raw) == 3)
      #expect(Memory.find(Array("abd".utf8), in: raw, from: 4) == 8)
      #expect(Memory.find(Array("abd".utf8), in: raw, from: 9) == nil)
      #expect(Memory.find(Array("zz".utf8), in: raw) == nil)
      #expect(Memory.find([], in: raw) == nil)
      #expect(Memory.find(Array("abcabdxxabdX".utf8), in: raw) == nil)
      #expect(Memory.equal(raw.baseAddress!, raw.baseAddress! + 3, count: 2))
      #expect(!Memory.equal(raw.baseAddress!, raw.baseAddress! + 3, count: 3))
    }
    let c: [UInt8] = [0x61, 0x62, 0, 0x63]
    c.withUnsafeBytes {
      #expect(Memory.cStringLength($0.baseAddress!, max: 4) == 2)
      #expect(Memory.cStringLength($0.baseAddress!, max: 1) == 1)
    }
  }

  /// A file with data at 0, a 1 MiB hole, data at 1 MiB + 64 KiB, and a zero block written as
  /// data: the walker sees the data extents, the copy keeps the holes and the content.
  @Test func sparseWalkAndCopy() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let source = dir + "/ram"
    let out = try Files.create(source)
    let size: Int64 = 4 << 20
    #expect(ftruncate(out.fd, off_t(size)) == 0)
    let a = [UInt8](repeating: 0xAA, count: 4096)
    let b = [UInt8](repeating: 0xBB, count: 8192)
    let zeros = [UInt8](repeating: 0, count: 1 << 16)
    _ = try out.descriptor.writeAll(toAbsoluteOffset: 0, a)
    _ = try out.descriptor.writeAll(toAbsoluteOffset: (1 << 20) + (1 << 16), b)
    _ = try out.descriptor.writeAll(toAbsoluteOffset: 2 << 20, zeros)
    var extents: [Range<Int64>] = []
    try SparseFile.forEachDataExtent(fd: out.fd, size: size, path: source) { extents.append($0) }
    #expect(!extents.isEmpty)
    // Every written byte is inside an extent, and the extents are ordered and disjoint.
    for offset: Int64 in [0, 4095, (1 << 20) + (1 << 16), (1 << 20) + (1 << 16) + 8191] {
      #expect(extents.contains { $0.contains(offset) }, "offset \(offset)")
    }
    for (x, y) in zip(extents, extents.dropFirst()) { #expect(x.upperBound <= y.lowerBound) }

    let copy = dir + "/copy"
    var reports: [UInt64] = []
    let written = try SparseFile.copy(from: source, to: copy) { done, _ in reports.append(done) }
    // The two data blocks, rounded to the 64 KiB copy blocks they fall in; the zero block is
    // not written.
    #expect(written == 4096 + 8192)
    #expect(reports.last == UInt64(size))
    let original = try Files.read(source)
    let copied = try Files.read(copy)
    #expect(copied == original)
    #expect(SparseFile.allocatedBytes(copy) < 1 << 20)

    // MappedFile's non-zero blocks come from the same walker.
    var blocks: [Int] = []
    try MappedFile(path: copy).forEachNonZeroBlock { offset, _ in blocks.append(offset) }
    #expect(blocks == [0, (1 << 20) + (1 << 16)])
  }

  @Test func atomicWriteForms() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    try Files.writeAtomically("text", to: dir + "/a")
    #expect(try Files.read(dir + "/a") == Array("text".utf8))
    try [UInt8](repeating: 7, count: 3).withUnsafeBytes {
      try Files.writeAtomically($0, to: dir + "/a")
    }
    #expect(try Files.read(dir + "/a") == [7, 7, 7])
    // Nothing but the file itself is left in the directory.
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["a"])
    do {
      try Files.writeAtomically("x", to: dir + "/missing/a")
      Issue.record("wrote into a missing directory")
    } catch {
      #expect(error.code == .noSuchFileOrDirectory)
      #expect(error.description.contains("missing/a"))
    }
  }

  /// The one spawn's options, as QEMU and the clone engine are started: variables set for the
  /// child only, a session of its own, nothing inherited but 0-2, output appended.
  @Test func spawnOptionsHoldInTheChild() throws {
    let env = try ChildProcess.run(["/bin/sh", "-c", "test \"$KSCOPE_SPAWN_TEST\" = yes"], .init(environment: ["KSCOPE_SPAWN_TEST": "yes"]))
    #expect(env.succeeded)
    #expect(try ChildProcess.run(["/bin/sh", "-c", "test \"$KSCOPE_SPAWN_TEST\" = yes"]).exitStatus == 1)
    // Field 6 of /proc/PID/stat is the session id: its own pid for a session leader.
    let leader = "test \"$(cut -d' ' -f6 /proc/$$/stat)\" = $$"
    #expect(try ChildProcess.run(["/bin/sh", "-c", leader], .init(newSession: true)).succeeded)
    #expect(try ChildProcess.run(["/bin/sh", "-c", leader]).exitStatus == 1)
    // A descriptor of ours without close-on-exec does not reach a child that inherits nothing.
    let fd = open("/dev/null", O_RDONLY)
    defer { close(fd) }
    let probe = "test -e /proc/$$/fd/\(fd)"
    #expect(try ChildProcess.run(["/bin/sh", "-c", probe]).succeeded)
    #expect(try ChildProcess.run(["/bin/sh", "-c", probe], .init(inheritNothing: true)).exitStatus == 1)
    // Output appended, standard error with it.
    let log = "/tmp/kscope-spawn-\(getpid()).log"
    defer { unlink(log) }
    for _ in 0..<2 {
      _ = try ChildProcess.run(["/bin/sh", "-c", "echo out; echo err >&2"], .init(output: log, append: true, errorsToo: true))
    }
    #expect(Files.readText(log) == "out\nerr\nout\nerr\n")
  }

  @Test func childProcessReportsStatusAndUsage() throws {
    let ok = try ChildProcess.run(["/bin/true"])
    #expect(ok.succeeded && ok.signal == nil && ok.maxRSSKiB > 0)
    let failed = try ChildProcess.run(["/bin/sh", "-c", "exit 3"])
    #expect(failed.exitStatus == 3)
    let killed = try ChildProcess.run(["/bin/sh", "-c", "kill -9 $$"])
    #expect(killed.exitStatus == nil && killed.signal == 9)
    // A child that touches 64 MiB reports at least that as its peak RSS.
    let big = try ChildProcess.run(["/usr/bin/python3", "-c", "b = bytearray(64 << 20)"])
    #expect(big.succeeded && big.maxRSSKiB >= 64 << 10)
    #expect(throws: FileError.self) { try ChildProcess.run(["/no/such/program"]) }
    // Under GNU time the figure is the child's own: a child that touches nothing stays far
    // below one that touches 64 MiB, whatever this process holds.
    let small = try ChildProcess.measured(["/bin/true"])
    let large = try ChildProcess.measured(["/usr/bin/python3", "-c", "b = bytearray(64 << 20)"])
    #expect(small.succeeded && large.succeeded)
    #expect(small.maxRSSKiB < 16 << 10 && large.maxRSSKiB >= 64 << 10)
  }

  /// flock(2) locks belong to an open file, so two opens in one process conflict as two
  /// processes would.
  @Test func locksConflictWaitAndRefuseLinks() throws {
    let dir = try makeTempDir()
    defer { cleanup(dir) }
    let path = dir + "/lock"
    // A lock is held until released (no deinit releases it), so each one taken is released.
    let shared = try LockFile.lock(path, exclusive: false)
    let second = try #require(LockFile.tryLock(path, exclusive: false))
    #expect(LockFile.tryLock(path) == nil)
    shared.release()
    second.release()
    let exclusive = try #require(LockFile.tryLock(path))
    #expect(LockFile.tryLock(path, exclusive: false) == nil)
    exclusive.release()
    try #require(LockFile.tryLock(path)).release()
    try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: path)
    #expect(LockFile.tryLock(dir + "/link") == nil)
    #expect(throws: FileError.self) { try LockFile.lock(dir + "/link", exclusive: true) }
  }

  @Test func monotonicClockAdvances() {
    let a = MonotonicClock.nanoseconds()
    usleep(2000)
    let b = MonotonicClock.nanoseconds()
    #expect(b > a && b - a >= 2_000_000)
  }
}
