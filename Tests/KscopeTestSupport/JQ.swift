import Foundation
import Testing

/// Checks that a command's JSON output survives a round trip through jq (host/setup.sh installs
/// it): jq keeps numbers as doubles, so an address written as a number above 2^53 comes back
/// rounded and the two parses differ. Records an issue naming `what` when they do.
public func expectSurvivesJQ(_ json: String, _ what: String) throws {
  let dir = NSTemporaryDirectory() + "kscope-jq-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: dir) }
  try Data(json.utf8).write(to: URL(fileURLWithPath: dir + "/out.json"))
  let r = try runProgram("/usr/bin/jq", ["-c", ".", dir + "/out.json"])
  #expect(r.status == 0, "jq could not read the JSON of \(what): \(r.stderr)")
  guard r.status == 0 else { return }
  let ours = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? NSObject
  let jqs = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? NSObject
  #expect(ours != nil && ours == jqs, "\(what): jq reads the JSON differently (a number above 2^53?)")
}
