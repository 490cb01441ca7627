import CCrypto
import Foundation

/// SHA-256, incremental, from OpenSSL's libcrypto (EVP). Used for content-addressed image
/// caching and for workload digests that compare the answers of two VMs. Measured in one run
/// on a 256 MiB buffer (host/bench/libs/run.sh): libcrypto 0.93-1.08 GB/s, the hand-written
/// Swift one it replaced 0.04-0.10 GB/s; libgcrypt is as fast, swift-crypto would build BoringSSL.
public struct SHA256 {
  /// The EVP context, copied when a copy of this value is updated (value semantics).
  private final class Context {
    let ctx: OpaquePointer
    init(copying other: Context? = nil) {
      guard let c = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
      ctx = c
      if let other {
        guard EVP_MD_CTX_copy_ex(c, other.ctx) == 1 else { fatalError("EVP_MD_CTX_copy_ex failed") }
      } else {
        guard EVP_DigestInit_ex(c, EVP_sha256(), nil) == 1 else {
          fatalError("EVP_DigestInit_ex failed")
        }
      }
    }
    deinit { EVP_MD_CTX_free(ctx) }
  }

  private var context = Context()

  public init() {}

  private mutating func unique() -> OpaquePointer {
    if !isKnownUniquelyReferenced(&context) { context = Context(copying: context) }
    return context.ctx
  }

  public mutating func update(_ data: Data) {
    let ctx = unique()
    data.withUnsafeBytes { raw in
      if let base = raw.baseAddress, raw.count > 0 { _ = EVP_DigestUpdate(ctx, base, raw.count) }
    }
  }

  public mutating func update(_ string: String) { update(Data(string.utf8)) }

  /// The digest; the value starts over afterwards.
  public mutating func finalize() -> [UInt8] {
    let ctx = unique()
    var out = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    _ = EVP_DigestFinal_ex(ctx, &out, &length)
    context = Context()
    return out
  }

  public mutating func hexDigest() -> String {
    finalize().map { String(format: "%02x", $0) }.joined()
  }

  public static func hex(_ data: Data) -> String {
    var s = SHA256()
    s.update(data)
    return s.hexDigest()
  }
}
