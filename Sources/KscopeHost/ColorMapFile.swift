import KscopeCore
import KscopeOS

/// A color map file could not be used; the description is one line starting with the path.
public struct ColorMapFileError: Error, Sendable, CustomStringConvertible {
  public let path: String
  public let reason: String
  public var description: String { "\(path): \(reason)" }
}

/// Reading and writing color map files.
public enum ColorMapFile {
  /// Reads and fully validates a color map.
  public static func open(_ path: String) throws -> ColorMap {
    let bytes = try Files.read(path, limit: 1 << 36)
    do {
      return try ColorMapFormat.decode(bytes)
    } catch {
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
