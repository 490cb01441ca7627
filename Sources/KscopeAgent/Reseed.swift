import KscopeOS

/// Reseeds the guest kernel's RNG from host-supplied bytes (`kscope reseed HEX`, run by the host
/// right after a clone resumes): two clones of one snapshot start with the same RNG state, and
/// kernels without a VM generation ID driver (Debian's 6.1 cloud kernel) would hand both the
/// same "random" bytes. The bytes are credited as entropy (RNDADDENTROPY) and the kernel's CRNG
/// is reseeded at once (RNDRESEEDCRNG) rather than at its next scheduled reseed.
public enum Reseed {
  /// Parses 32..256 bytes of lowercase or uppercase hex; nil for anything else.
  public static func parseSeed(_ hex: String) -> [UInt8]? {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0, (64...512).contains(chars.count) else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
      switch c {
      case 0x30...0x39: return c - 0x30
      case 0x61...0x66: return c - 0x61 + 10
      case 0x41...0x46: return c - 0x41 + 10
      default: return nil
      }
    }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count / 2)
    var i = 0
    while i < chars.count {
      guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
      out.append(hi << 4 | lo)
      i += 2
    }
    return out
  }

  /// Mixes `seed` into the kernel's pool, credited, and reseeds the CRNG. Returns an error
  /// message, or nil on success. Needs root.
  public static func run(_ seed: [UInt8]) -> String? {
    do { try KernelRandom.addEntropyAndReseed(seed) } catch { return error.description }
    return nil
  }
}
