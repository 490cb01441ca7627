// The libFuzzer entry point for the hint region reader, including the BTF the guest agent
// publishes in it. The package never defines KSCOPE_LIBFUZZER_HINTS; `host/fuzz.sh hints
// SECONDS` compiles this file alone against instrumented builds of kscope's modules and runs it.
//
// Every input must decode or be refused, as it is and resealed (valid checksum, so the damage
// reaches the section decoders); a decoded region is re-encoded, which must succeed. A BTF
// section goes through what `kscope color` does with it: zstd decompression into the declared
// size, its checksum, the BTF parse and the layout taken from it. The input is also parsed as
// raw BTF (what the published blob decompresses to), since a mutated zstd stream rarely keeps
// a valid checksum.
#if KSCOPE_LIBFUZZER_HINTS
  import KscopeCore
  import KscopeKernelImage
  import KscopeLayout

  func layoutFromFuzzedBTF(_ btf: BTF) {
    _ = try? KernelLayout.fromBTF(btf, symbols: [:], sourceName: "fuzz")
  }

  @_cdecl("LLVMFuzzerTestOneInput")
  public func hintFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for input in [bytes, HintDamage.reseal(bytes)] {
      guard let h = try? HintFormat.decode(input) else { continue }
      let content = HintContent(
        kernelRelease: h.kernelRelease, buildID: h.buildID, published: h.published,
        pageSize: h.pageSize, kernel: h.kernel, frames: h.frames, files: Array(h.files),
        metadata: h.metadata, incomplete: h.partial)
      _ = try? HintFormat.encode(content, regionSize: input.count, generation: h.generation)
      if let published = h.btf, let btf = try? PublishedBTFBlob.parse(published) {
        layoutFromFuzzedBTF(btf)
      }
    }
    if let btf = try? BTF(bytes) { layoutFromFuzzedBTF(btf) }
    return 0
  }
#endif
