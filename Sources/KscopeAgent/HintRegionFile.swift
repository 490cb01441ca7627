import KscopeCore

#if canImport(Glibc)
  import Glibc
#endif

/// Reads a hint region from a file on the host (the ivshmem backing file of a running VM, or a
/// snapshot's copy) with the seqlock protocol: generation, copy, generation again. The guest may
/// be writing while we read; the file may be anything.
public enum HintRegionFile {
  public static func read(_ path: String) throws(HintError) -> HintSet {
    guard let fd = Posix.openRead(path) else {
      throw .unreadable("\(path): cannot open: \(Posix.errorText())")
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw .unreadable("\(path): cannot stat: \(Posix.errorText())") }
    guard st.st_mode & S_IFMT == S_IFREG else { throw .unreadable("\(path): not a regular file") }
    // Refuse before reading: the copy is as large as the file, and the region's limit bounds it.
    guard st.st_size <= HintFormat.maxRegionSize else {
      throw .oversized(what: "bytes of region file", count: UInt64(st.st_size), limit: UInt64(HintFormat.maxRegionSize))
    }
    let size = Int(st.st_size)
    return try HintReader.readConsistent(
      generation: { () throws(HintError) -> UInt64 in
        var b = [UInt8](repeating: 0, count: 8)
        guard Posix.pread(fd, &b, count: 8, offset: UInt64(HintFormat.generationOffset)) == 8 else {
          // Too short to hold a generation: let the decoder name the problem.
          return 0
        }
        return HintReader.generation(inPrefix: [UInt8](repeating: 0, count: 16) + b) ?? 0
      },
      copy: { () throws(HintError) -> [UInt8] in
        var b = [UInt8](repeating: 0, count: size)
        guard let n = Posix.pread(fd, &b, count: size, offset: 0) else {
          throw .unreadable("\(path): read failed: \(Posix.errorText())")
        }
        return n == size ? b : Array(b[0..<n])
      })
  }
}
