import Foundation
import Testing

@testable import KscopeVM

@Suite struct QMPTests {
  @Test func parsesGreeting() throws {
    let line = Data(
      #"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}"#
        .utf8)
    #expect(try QMPMessage.parse(line) == .greeting(version: "7.2.22"))
  }

  @Test func parsesReplyErrorAndEvent() throws {
    let ok = try QMPMessage.parse(Data(#"{"return": {"status": "running"}, "id": 7}"#.utf8))
    guard case .success(let id, let result) = ok else {
      Issue.record("not a success: \(ok)")
      return
    }
    #expect(id == 7)
    #expect(result["status"]?.string == "running")
    #expect(
      try QMPMessage.parse(
        Data(#"{"error": {"class": "GenericError", "desc": "no"}, "id": 3}"#.utf8))
        == .failure(id: 3, errorClass: "GenericError", description: "no"))
    #expect(
      try QMPMessage.parse(Data(#"{"timestamp": {"seconds": 1}, "event": "STOP"}"#.utf8))
        == .event(name: "STOP"))
  }

  @Test func rejectsGarbage() {
    #expect(throws: VMError.self) { try QMPMessage.parse(Data("not json".utf8)) }
    #expect(throws: VMError.self) { try QMPMessage.parse(Data("[1,2]".utf8)) }
    #expect(throws: VMError.self) { try QMPMessage.parse(Data(#"{"unexpected": 1}"#.utf8)) }
  }

  @Test func encodesCommandsWithID() throws {
    let d = try QMPMessage.command("migrate", arguments: ["uri": "exec:cat > '/x'"], id: 12)
    #expect(d.last == 0x0a)
    let obj = try JSONSerialization.jsonObject(with: d) as? [String: Any]
    #expect(obj?["execute"] as? String == "migrate")
    #expect(obj?["id"] as? Int == 12)
    #expect((obj?["arguments"] as? [String: Any])?["uri"] as? String == "exec:cat > '/x'")
  }

  @Test func framesLinesAcrossChunks() throws {
    var f = LineFramer(maxLine: 64)
    try f.append(Data("{\"a\":1}\r\n{\"b\"".utf8))
    #expect(f.nextLine() == Data("{\"a\":1}".utf8))
    #expect(f.nextLine() == nil)
    try f.append(Data(":2}\n".utf8))
    #expect(f.nextLine() == Data("{\"b\":2}".utf8))
    #expect(f.nextLine() == nil)
  }

  @Test func refusesUnboundedLines() throws {
    var f = LineFramer(maxLine: 16)
    #expect(throws: VMError.self) { try f.append(Data(repeating: 0x41, count: 17)) }
  }

  /// A fake QMP server on a real unix socket: greeting, capabilities, an event interleaved
  /// before the reply, a stale reply with a foreign id, then silence (the client must time out).
  @Test func clientMatchesRepliesSkipsEventsAndTimesOut() throws {
    let path = "/tmp/kscope-qmp-test-\(getpid()).sock"
    let server = try FakeUnixServer(path: path)
    defer { server.close() }
    let t = Thread {
      guard let c = server.accept() else { return }
      c.send(
        #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}"#
          + "\n")
      _ = c.receiveLine()  // qmp_capabilities, id 1
      c.send(#"{"return": {}, "id": 1}"# + "\n")
      _ = c.receiveLine()  // query-status, id 2
      c.send(#"{"event": "RESUME", "timestamp": {}}"# + "\n")
      c.send(#"{"return": {"status": "wrong"}, "id": 99}"# + "\n")
      c.send(#"{"return": {"status": "running"}, "id": 2}"# + "\n")
      _ = c.receiveLine()  // stop, id 3: answered with an error
      c.send(#"{"error": {"class": "GenericError", "desc": "nope"}, "id": 3}"# + "\n")
      _ = c.receiveLine()  // cont, id 4: never answered
      Thread.sleep(forTimeInterval: 2)
      c.close()
    }
    t.start()
    let q = try QMPClient(path: path, timeout: 5)
    #expect(q.qemuVersion == "7.2.0")
    #expect(try q.execute("query-status")["status"]?.string == "running")
    #expect(q.events == ["RESUME"])
    #expect(throws: VMError.qmp("stop failed: GenericError: nope")) { try q.execute("stop") }
    let start = Date()
    #expect(throws: VMError.timeout("waiting for a QMP reply")) {
      try q.execute("cont", timeout: 0.5)
    }
    #expect(Date().timeIntervalSince(start) < 1.5)
    q.close()
  }
}
