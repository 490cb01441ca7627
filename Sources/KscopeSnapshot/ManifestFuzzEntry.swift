// A libFuzzer entry point for the snapshot manifest reader, compiled only on request (the
// package never defines KSCOPE_LIBFUZZER_MANIFEST), against a debug build's other modules:
//
//   swift build
//   swiftc -parse-as-library -module-name KscopeSnapshot -I .build/debug/Modules -D KSCOPE_LIBFUZZER_MANIFEST \
//     -O -sanitize=fuzzer,address Sources/KscopeSnapshot/*.swift \
//     .build/debug/{KscopeCore,KscopeOS}.build/*.o -o manifest-fuzzer
//   ./manifest-fuzzer -max_len=8192 -max_total_time=600 -timeout=5 corpus/
//
// Every input must decode to a manifest that passes every check, or be refused.
#if KSCOPE_LIBFUZZER_MANIFEST
  import Foundation

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
