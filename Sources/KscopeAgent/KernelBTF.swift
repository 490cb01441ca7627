import CZstd
import KscopeCore
import KscopeOS

/// The running kernel's BTF (/sys/kernel/btf/vmlinux), compressed for the hint region, so that
/// the host can build a layout for a kernel whose debug info nobody has. Read once at start:
/// it does not change while the kernel runs.
///
/// zstd at level 3: on the build host's 5.5 MB of BTF (a 6.18 kernel), 1.75 MB in 0.07 s of
/// CPU (gzip -6: the same size in 0.5 s; zstd -19: 1.44 MB in 4 s); the host decompresses 6.12's
/// 4.7 MB in about 15 ms. Level 3 because the agent pays it inside a guest (0.5 s under TCG).
public enum KernelBTF {
  public static let path = "/sys/kernel/btf/vmlinux"
  static let level: Int32 = 3

  public enum Outcome {
    case published(PublishedBTF)
    /// The kernel was built without BTF: nothing to publish, nothing wrong.
    case absent
    case failed(String)
  }

  /// Reads and compresses the BTF at `path`.
  public static func read(_ path: String = path) -> Outcome {
    let raw: [UInt8]
    do { raw = try Files.read(path, limit: Int(HintFormat.maxBTFBytes)) } catch {
      return error.isNoSuchFile ? .absent : .failed(error.description)
    }
    // The BTF header: magic 0xEB9F (little-endian) and version 1; the host checks all of it.
    guard raw.count >= 24, raw[0] == 0x9F, raw[1] == 0xEB, raw[2] == 1 else {
      return .failed("\(path): not a BTF blob (\(raw.count) bytes)")
    }
    guard let data = compress(raw) else { return .failed("\(path): zstd compression failed") }
    var h = XXH64()
    h.update(raw)
    return .published(
      PublishedBTF(compression: .zstd, size: UInt64(raw.count), checksum: h.finish(), data: data))
  }

  static func compress(_ raw: [UInt8]) -> [UInt8]? {
    let bound = ZSTD_compressBound(raw.count)
    guard ZSTD_isError(bound) == 0 else { return nil }
    var out = [UInt8](repeating: 0, count: bound)
    let n = out.withUnsafeMutableBytes { dst in
      raw.withUnsafeBytes { src in
        ZSTD_compress(dst.baseAddress, dst.count, src.baseAddress, src.count, level)
      }
    }
    guard ZSTD_isError(n) == 0 else { return nil }
    out.removeLast(out.count - n)
    return out
  }
}
