import CZstd
import KscopeCore
import KscopeLayout

/// The BTF blob the guest agent published in its hint region, made usable: decompressed into a
/// buffer of exactly the size the section declares (bounded by the format's limit, checked by
/// the hint reader), compared with its XXH64, then parsed like any BTF. The guest wrote every
/// byte of it: a wrong size, a corrupt stream or a checksum mismatch is a one-line error.
public enum PublishedBTFBlob {
  public static func decompress(_ published: PublishedBTF) throws(BTFError) -> [UInt8] {
    guard published.size > 0, published.size <= HintFormat.maxBTFBytes else {
      throw BTFError("published BTF: implausible size \(published.size)")
    }
    let size = Int(published.size)
    switch published.compression {
    case .zstd: break  // the only one; a new one must be handled here
    }
    // The frame's own content size, when it has one, must be the declared one; either way
    // ZSTD_decompress writes at most `size` bytes and fails on more.
    let declared = published.data.withUnsafeBytes {
      ZSTD_getFrameContentSize($0.baseAddress, $0.count)
    }
    if declared != ZSTD_CONTENTSIZE_UNKNOWN, declared != UInt64(size) {
      throw BTFError(
        "published BTF: the zstd frame holds \(declared == ZSTD_CONTENTSIZE_ERROR ? "no valid frame" : "\(declared) bytes"), the hints say \(size)"
      )
    }
    // Not zero-filled first: only the bytes zstd wrote are kept (n of them, checked below).
    var failure: Int? = nil
    let out = [UInt8](unsafeUninitializedCapacity: size) { dst, initialized in
      let n = published.data.withUnsafeBytes { src in
        ZSTD_decompress(dst.baseAddress, size, src.baseAddress, src.count)
      }
      if ZSTD_isError(n) != 0 {
        failure = n
        initialized = 0
      } else {
        initialized = n
      }
    }
    if let failure {
      throw BTFError("published BTF: zstd: \(String(cString: ZSTD_getErrorName(failure)))")
    }
    guard out.count == size else {
      throw BTFError("published BTF: decompressed to \(out.count) bytes, the hints say \(size)")
    }
    var h = XXH64()
    h.update(out)
    let sum = h.finish()
    guard sum == published.checksum else {
      throw BTFError(
        "published BTF: checksum mismatch (stored \(hex64(published.checksum)), computed \(hex64(sum)))"
      )
    }
    return out
  }

  /// Decompressed, checked and parsed.
  public static func parse(_ published: PublishedBTF) throws(BTFError) -> BTF {
    try BTF(try decompress(published))
  }
}
