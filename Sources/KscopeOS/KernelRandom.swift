#if canImport(Glibc)
  import Glibc
#endif

/// The kernel's random number generator through /dev/urandom's ioctls (root only): entropy
/// credited into the pool, and the CRNG reseeded at once.
public enum KernelRandom {
  /// _IOW('R', 0x03, int[2]) and _IO('R', 0x07) from <linux/random.h>.
  static let addEntropy: UInt = 0x4008_5203
  static let reseedCRNG: UInt = 0x5207

  /// Mixes `seed` into the pool credited with 8 bits per byte (RNDADDENTROPY), then reseeds
  /// the CRNG (RNDRESEEDCRNG).
  public static func addEntropyAndReseed(_ seed: [UInt8]) throws(FileError) {
    let path = "/dev/urandom"
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
    defer { close(fd) }
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let words = (seed.count + 3) / 4
    var info = [Int32](repeating: 0, count: 2 + words)
    info[0] = Int32(seed.count * 8)
    info[1] = Int32(seed.count)
    info.withUnsafeMutableBytes { raw in
      for (k, b) in seed.enumerated() { raw[8 + k] = b }
    }
    let added = info.withUnsafeMutableBytes { ioctl(fd, addEntropy, $0.baseAddress!) }
    guard added == 0 else { throw FileError(path: path, operation: "RNDADDENTROPY", errno: errno) }
    guard ioctl(fd, reseedCRNG) == 0 else {
      throw FileError(path: path, operation: "RNDRESEEDCRNG", errno: errno)
    }
  }
}
