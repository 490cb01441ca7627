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
