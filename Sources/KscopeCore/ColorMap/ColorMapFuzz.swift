/// Fuzzing support for the color map reader: mutated bytes put back behind a valid file size
/// and checksum, so the damage reaches the section decoders. The libFuzzer entry point is in
/// ColorMapFuzzEntry.swift (`host/fuzz.sh colormap SECONDS`).
public enum ColorMapFuzz {
  /// Restores the magic, sets the file size field to the real size, and recomputes the trailer
  /// (marker and XXH64 checksum).
  public static func reseal(_ input: [UInt8]) -> [UInt8] {
    let size = input.count
    guard size >= ColorMapFormat.headerSize + ColorMapFormat.trailerSize else { return input }
    var b = input
    for i in 0..<8 { b[i] = ColorMapFormat.magic[i] }
    for i in 0..<8 { b[40 + i] = UInt8(truncatingIfNeeded: UInt64(size) >> (8 * UInt64(i))) }
    for i in 0..<8 { b[size - 16 + i] = ColorMapFormat.trailerMagic[i] }
    let sum = XXH64.hash(b[0..<(size - 8)])
    for i in 0..<8 { b[size - 8 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
    return b
  }
}
