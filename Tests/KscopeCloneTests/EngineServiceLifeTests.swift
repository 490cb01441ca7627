import Dispatch
import Foundation
import KscopeEngine
import Testing

/// The engine service's exit: an engine whose directory is removed under it (by hand, or a
/// script cleaning up) ends once it has no clone, instead of waiting forever for a use lock
/// that nobody can take.
@Test func anEngineWhoseDirectoryIsRemovedEndsInsteadOfWaiting() throws {
  let f = try EngineTests.Fixture()
  let run = try EngineEventTests.Run(f)
  let dir = EngineDirectory(f.dir + "/engine")
  try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
  try FileManager.default.removeItem(atPath: dir.path)
  let ended = DispatchSemaphore(value: 0)
  let engine = run.engine
  let ram = f.ram
  Thread {
    _ = EngineService.serve(
      engine: engine, prepared: (pages: 0, seconds: 0), directory: dir,
      description: .init(policy: "on-demand", snapshot: ram, source: "local"), firstClientTimeout: 0.2)
    ended.signal()
  }.start()
  #expect(ended.wait(timeout: .now() + 5) == .success, "the engine still waits 5 s after its directory went")
}

/// A new engine removes the first-touch traces an earlier engine of its directory left (one per
/// clone it served), and ends on its own when no clone comes.
@Test func aNewEngineRemovesTheTracesOfTheLastOnesClones() throws {
  let f = try EngineTests.Fixture()
  let run = try EngineEventTests.Run(f)
  let dir = EngineDirectory(f.dir + "/engine")
  try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
  let old = dir.firstTouchTrace(pid: 12345)
  try "# first-touch order of clone 12345\n7 r\n".write(toFile: old, atomically: true, encoding: .utf8)
  try "kept".write(toFile: dir.path + "/notes.txt", atomically: true, encoding: .utf8)
  let reason = EngineService.serve(
    engine: run.engine, prepared: (pages: 0, seconds: 0), directory: dir,
    description: .init(policy: "on-demand", snapshot: f.ram, source: "local"), firstClientTimeout: 0.2)
  #expect(reason.contains("no clone connected"), "\(reason)")
  #expect(!FileManager.default.fileExists(atPath: old), "an earlier engine's trace is still there")
  #expect(FileManager.default.fileExists(atPath: dir.path + "/notes.txt"))
  #expect(FileManager.default.fileExists(atPath: dir.statsFile))
}
