import KscopeCore
import KscopeOS

/// Reads a hint region from a file on the host (the ivshmem backing file of a running VM, a
/// snapshot's copy, or an agent's `--out` file) with the seqlock protocol: generation, the
/// region decoded piece by piece (`HintFormat.decode(size:read:)`, every check of the format,
/// never a copy of the whole region beside what is decoded), generation again. The guest may
/// be writing while we read, and the file may hold anything.
///
/// The one reader of hint files: `kscope hints read`, `kscope color` and the tests use it.
/// It lives in its own target, without Foundation, so that the guest agent can use it too.
public enum HintRegionFile {
  /// How often a read that met the agent mid-publication is tried again, after a pause of 1, 4
  /// and 16 ms (a publication is a few milliseconds of copying; a snapshot never changes, so its
  /// reads never retry).
  public static let staleRetries = 3

  /// Opens `path` (a regular file; the user's own path, links followed) and reads it.
  public static func read(_ path: String) throws(HintError) -> HintSet {
    let file: OpenFile
    do { file = try OpenFile.open(path) } catch { throw .unreadable(error.description) }
    return try read(file)
  }

  /// Reads an open region file. The size is checked against the format's limit before anything
  /// is read; a stale read (odd or moving generation) is retried `staleRetries` times.
  ///
  /// The first try decodes the file piece by piece, never holding the whole region beside what
  /// is decoded from it (a snapshot's region does not change, and this is its only try). That
  /// takes the whole decode between the two generation reads, which an agent republishing
  /// every millisecond outruns: a retry copies the region in one read instead (a short seqlock
  /// window) into a `ReleasableCopy` and decodes that, giving back each part of the copy as the
  /// decoder finishes with it, so copy and decoded hints are never both held whole.
  public static func read(_ file: OpenFile) throws(HintError) -> HintSet {
    var tries = 0
    return try read(file, attempts: &tries)
  }

  /// The same, counting the tries in `attempts` (1 when the first read was consistent; more
  /// when the agent was publishing and the read was retried from a copy).
  public static func read(_ file: OpenFile, attempts: inout Int) throws(HintError) -> HintSet {
    let size = file.size
    guard size <= UInt64(HintFormat.maxRegionSize) else {
      throw .oversized(
        what: "bytes of region file", count: size, limit: UInt64(HintFormat.maxRegionSize))
    }
    let generation = { () throws(HintError) -> UInt64 in
      guard let b = try? file.read(at: UInt64(HintFormat.generationOffset), count: 8), b.count == 8
      else {
        return 0  // too short to hold a generation: the decoder names the problem
      }
      return HintReader.generation(inPrefix: [UInt8](repeating: 0, count: 16) + b) ?? 0
    }
    let read = { (offset: Int, count: Int) throws(HintError) -> [UInt8] in
      do throws(FileError) { return try file.read(at: UInt64(offset), count: count) } catch {
        throw .unreadable(error.description)
      }
    }
    var attempt = 0
    while true {
      attempts = attempt + 1
      do throws(HintError) {
        if attempt == 0 {
          return try HintReader.readConsistent(generation: generation, size: Int(size), read: read)
        }
        let copy: ReleasableCopy
        do throws(FileError) { copy = try ReleasableCopy(capacity: Int(size), path: file.path) } catch {
          throw HintError.unreadable(error.description)
        }
        return try HintReader.readConsistent(
          generation: generation,
          copy: { () throws(HintError) -> Int in
            do throws(FileError) { return try copy.fill(from: file) } catch { throw .unreadable(error.description) }
          },
          read: { (offset, count) throws(HintError) -> [UInt8] in
            guard let bytes = copy.read(at: offset, count: count) else {
              throw .truncated(size: copy.count, expected: UInt64(max(offset, 0)) &+ UInt64(max(count, 0)))
            }
            return bytes
          },
          release: { offset, count in copy.release(at: offset, count: count) })
      } catch {
        switch error {
        case .staleWriting, .staleChanged:
          attempt += 1
          if attempt > staleRetries { throw error }
          // The agent is mid-publication: give it 1, 4, then 16 ms to finish before copying.
          HostProcess.sleep(microseconds: 1000 << (2 * UInt64(attempt - 1)))
        default: throw error
        }
      }
    }
  }
}
