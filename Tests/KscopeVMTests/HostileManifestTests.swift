import Foundation
import KscopeOS
import KscopeTestSupport
import Testing

@testable import KscopeVM

#if canImport(Glibc)
  import Glibc
#endif

/// The VM layer's side of hostile snapshots: kernels and images are found by build id and
/// key, never by a path from the manifest (the manifest's own checks are KscopeSnapshotTests').
@Suite struct HostileSnapshotVMTests {
  @Test func buildIDsNeverBecomePaths() throws {
    #expect(throws: VMError.self) { try GuestKernel.find(buildID: "../../../../tmp/x") }
  }

  @Test func aBuildIDOfNoCachedKernelIsRefused() throws {
    do {
      _ = try GuestKernel.find(
        buildID: String(repeating: "0", count: 40), release: "6.1.0-56-cloud-amd64")
      Issue.record("a build id of no kernel was accepted")
    } catch {
      #expect("\(error)".contains("no cached kernel has build id"))
    }
  }

  @Test func imagesAreFoundByKeyNeverByPath() throws {
    #expect(throws: VMError.self) { try GuestImage.cached(key: "../../etc", stateDir: "/tmp") }
    #expect(throws: VMError.self) {
      try GuestImage.cached(key: "0123456789abcdef", stateDir: "/nonexistent")
    }
  }
}

/// A clone of a snapshot whose manifest tries to inject a shell command.
@Suite struct InjectingSnapshotTests {
  func makeSnapshot() throws -> String { try SampleSnapshot.makeDirectory() }

  @Test func aCloneOfAnInjectingManifestRunsNothing() throws {
    let dir = try makeSnapshot()
    let marker = NSTemporaryDirectory() + "kscope-pwned-\(getpid())"
    defer {
      try? FileManager.default.removeItem(atPath: dir)
      unlink(marker)
    }
    var m = SampleSnapshot.manifest()
    m.deviceState = "ds';touch \(marker);'"
    try m.encoded().write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    let state = NSTemporaryDirectory() + "kscope-pwned-state-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: state) }
    #expect { try VMManager(stateDir: state).clone(snapshot: dir, name: "x") } throws: {
      "\($0)".contains("plain file name")
    }
    #expect(!FileManager.default.fileExists(atPath: marker))
    #expect(!FileManager.default.fileExists(atPath: state + "/vms/x"))
  }
}


/// The device state reaches QEMU as a descriptor (QMP getfd, SCM_RIGHTS), not as a path in a
/// shell command: a fake QMP server receives the descriptor and reads the file through it.
@Suite struct DescriptorPassingTests {
  /// recvmsg of one line with an SCM_RIGHTS descriptor.
  static func receiveWithDescriptor(_ fd: Int32) -> (String, Int32?) {
    var buf = [UInt8](repeating: 0, count: 4096)
    var control = [UInt8](repeating: 0, count: 64)
    let n: Int = buf.withUnsafeMutableBytes { b in
      control.withUnsafeMutableBytes { c in
        var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
        return withUnsafeMutablePointer(to: &iov) { iovp in
          var msg = msghdr()
          msg.msg_iov = iovp
          msg.msg_iovlen = 1
          msg.msg_control = c.baseAddress
          msg.msg_controllen = c.count
          return recvmsg(fd, &msg, 0)
        }
      }
    }
    guard n > 0 else { return ("", nil) }
    let line = String(decoding: buf[0..<n], as: UTF8.self)
    let level = control.withUnsafeBytes { $0.load(fromByteOffset: 8, as: Int32.self) }
    let type = control.withUnsafeBytes { $0.load(fromByteOffset: 12, as: Int32.self) }
    guard level == SOL_SOCKET, type == SCM_RIGHTS else { return (line, nil) }
    return (line, control.withUnsafeBytes { $0.load(fromByteOffset: 16, as: Int32.self) })
  }

  @Test func getfdPassesTheOpenFile() throws {
    let sock = NSTemporaryDirectory() + "kscope-qmp-fd-\(getpid()).sock"
    let file = NSTemporaryDirectory() + "kscope-qmp-fd-\(getpid()).state"
    try Data("device state bytes".utf8).write(to: URL(fileURLWithPath: file))
    defer { unlink(file) }
    let server = try FakeUnixServer(path: sock)
    defer { server.close() }
    final class Box: @unchecked Sendable {
      var line = ""
      var content = ""
    }
    let got = Box()
    let t = Thread {
      guard let c = server.accept() else { return }
      c.send(#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}}}"# + "\n")
      _ = c.receiveLine()
      c.send(#"{"return": {}, "id": 1}"# + "\n")
      let (line, fd) = Self.receiveWithDescriptor(c.fd)
      got.line = line
      if let fd {
        var b = [UInt8](repeating: 0, count: 64)
        let n = pread(fd, &b, 64, 0)
        got.content = String(decoding: b[0..<max(n, 0)], as: UTF8.self)
        Glibc.close(fd)
      }
      c.send(#"{"return": {}, "id": 2}"# + "\n")
      c.close()
    }
    t.start()
    let q = try QMPClient(path: sock, timeout: 5)
    let fd = open(file, O_RDONLY)
    defer { close(fd) }
    try q.passFile(fd, name: "kscope-state")
    q.close()
    #expect(got.line.contains(#""execute":"getfd""#))
    #expect(got.line.contains("kscope-state"))
    #expect(got.content == "device state bytes")
  }
}
