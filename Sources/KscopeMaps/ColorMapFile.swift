import KscopeCore
import KscopeOS

/// A color map file could not be used; the description is one line starting with the path.
public struct ColorMapFileError: Error, Sendable, CustomStringConvertible {
  public let path: String
  public let reason: String
  public var description: String { TerminalSafe.oneLine("\(path): \(reason)") }
}

/// Reading and writing color map files.
public enum ColorMapFile {
  /// The largest map file read: 2^32 frames (the format's limit) at ~16 bytes each in the
  /// worst case (a different color on every frame) stays under this.
  public static let maxFileBytes = 1 << 36

  /// Reads and fully validates a color map. The file is read in pieces (ColorMapFormat's
  /// `decode(size:read:)`), never held whole beside the decoded map: a reader's memory stays
  /// about the file's size.
  public static func open(_ path: String) throws -> ColorMap {
    // A FIFO, a device or a file larger than any map is refused before reading.
    let file = try OpenFile.open(path)
    try Files.checkSize(file.fd, path: path, limit: maxFileBytes)
    var readFailure: FileError? = nil
    do throws(ColorMapError) {
      return try ColorMapFormat.decode(size: Int(file.size)) { offset, count throws(ColorMapError) in
        do throws(FileError) {
          return try file.read(at: UInt64(offset), count: count)
        } catch {
          readFailure = error
          throw .truncated(size: offset, expected: UInt64(offset + count))
        }
      }
    } catch {
      if let readFailure { throw readFailure }
      throw ColorMapFileError(path: path, reason: error.description)
    }
  }

  /// Writes a map atomically; returns the number of bytes written.
  @discardableResult
  public static func write(_ map: ColorMap, to path: String) throws -> Int {
    let bytes = ColorMapFormat.encode(map)
    try Files.writeAtomically(bytes, to: path)
    return bytes.count
  }
}
