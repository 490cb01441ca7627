import KscopeCore
import KscopeOS

/// Layout files on disk, through KscopeOS: atomic writes (temporary file, fsync, rename, fsync
/// of the directory; only a regular file is ever replaced) and bounded reads of regular files.
public enum AtomicFile {
  public static func write(_ text: String, to path: String) throws(DebugInfoError) {
    try write(Array(text.utf8), to: path)
  }

  public static func write(_ bytes: [UInt8], to path: String) throws(DebugInfoError) {
    do { try Files.writeAtomically(bytes, to: path) } catch {
      throw .cannotWrite(path: TerminalSafe.oneLine(path), reason: error.reason)
    }
  }

  /// The whole file (a regular file of at most `limit` bytes, refused before reading
  /// otherwise), or an error naming it.
  public static func read(_ path: String, limit: Int = 1 << 30) throws(DebugInfoError) -> [UInt8] {
    do { return try Files.readBounded(path, limit: limit) } catch {
      throw .cannotOpen(path: TerminalSafe.oneLine(path), reason: error.reason)
    }
  }
}
