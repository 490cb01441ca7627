// The libFuzzer entry point for the snapshot manifest reader. The package never defines
// KSCOPE_LIBFUZZER_MANIFEST; `host/fuzz.sh manifest SECONDS` compiles this file alone against
// an instrumented build of kscope's modules and runs it.
//
// Every input must decode to a manifest that passes every check, or be refused.
#if KSCOPE_LIBFUZZER_MANIFEST
  import Foundation
  import KscopeSnapshot

  @_cdecl("LLVMFuzzerTestOneInput")
  public func manifestFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let m = try? SnapshotManifest.decode(Data(bytes: data, count: size)) else { return 0 }
    // What passed must be within the bounds the readers rely on.
    var end: UInt64 = 0
    for r in m.memoryLayout {
      precondition(r.guestPhysicalStart >= end && r.fileOffset + r.size <= m.ramSize)
      end = r.guestPhysicalStart + r.size
    }
    precondition(SnapshotManifest.isBuildID(m.kernel.buildID) && SnapshotManifest.cpuCounts.contains(m.cpus))
    _ = try? m.encoded()
    return 0
  }
#endif
