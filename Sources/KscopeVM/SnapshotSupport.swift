import Foundation
import KscopeOS

// The snapshot model (manifest, regions, the opened directory, mapped RAM) lives below this
// layer in KscopeSnapshot; re-exported so that the VM layer's callers see one `Snapshot` and
// one `SnapshotManifest` whichever module they import.
@_exported import KscopeSnapshot

/// Writes `data` to `path` atomically (KscopeOS: temporary file, fsync, rename, fsync of the
/// directory; only a regular file is ever replaced).
func writeAtomically(_ data: Data, to path: String) throws {
  do { try Files.writeAtomically([UInt8](data), to: path) } catch {
    throw VMError.invalidArgument(error.description)
  }
}

let iso8601: @Sendable (Date) -> String = { date in
  let f = ISO8601DateFormatter()
  f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
  return f.string(from: date)
}
