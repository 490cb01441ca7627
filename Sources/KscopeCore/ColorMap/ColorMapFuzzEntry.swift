// The libFuzzer entry point for the color map reader. The package never defines
// KSCOPE_LIBFUZZER_COLORMAP; `host/fuzz.sh colormap SECONDS` compiles this file alone against
// an instrumented build of KscopeCore and runs it.
//
// Every input must decode or be refused, as it is and resealed (valid size and checksum, so
// the damage reaches the section decoders); a decoded map must encode again.
#if KSCOPE_LIBFUZZER_COLORMAP
  import KscopeCore

  @_cdecl("LLVMFuzzerTestOneInput")
  public func colorMapFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for input in [bytes, ColorMapFuzz.reseal(bytes)] {
      guard let map = try? ColorMapFormat.decode(input) else { continue }
      if map.frameCount <= 1 << 22 { _ = ColorMapFormat.encode(map) }
    }
    return 0
  }
#endif
