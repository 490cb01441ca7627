// A libFuzzer entry point for the hint reader, compiled only on request (the package never
// defines KSCOPE_LIBFUZZER):
//
//   swiftc -parse-as-library -module-name KscopeCore -D KSCOPE_LIBFUZZER -O \
//     -sanitize=fuzzer,address $(find Sources/KscopeCore -name '*.swift') -o hints-fuzzer
//   ./hints-fuzzer -max_len=70000 -max_total_time=600 corpus/
//
// Every input must decode or be refused; a crash, a trap, an out-of-bounds access (ASan) or a
// timeout is a finding. Inputs that do decode are re-encoded, which must succeed.
#if KSCOPE_LIBFUZZER
  @_cdecl("LLVMFuzzerTestOneInput")
  public func hintFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Each input is tried as it is and sealed (valid checksum), so the fuzzer also reaches the
    // section decoders.
    for input in [bytes, HintDamage.reseal(bytes)] {
      guard let h = try? HintFormat.decode(input) else { continue }
      let content = HintContent(
        kernelRelease: h.kernelRelease, buildID: h.buildID, published: h.published,
        pageSize: h.pageSize, kernel: h.kernel, frames: h.frames, files: h.files,
        metadata: h.metadata, incomplete: h.partial)
      _ = try? HintFormat.encode(content, regionSize: input.count, generation: h.generation)
    }
    return 0
  }
#endif
