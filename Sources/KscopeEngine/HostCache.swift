import Foundation
import KscopeClone
import KscopeOS

/// The host cache file of one (snapshot, host) pair: a sparse tmpfs file laid out like the
/// snapshot's RAM file. Clones map it privately; a frame written here is served to every clone
/// by the kernel from page cache, without a fault. Frames never written stay holes (zeros).
public final class HostCache: @unchecked Sendable {
  public let path: String
  let file: PositionalFile
  let layout: RAMLayout
  let source: any PageSource
  let pageSize: UInt64
  let frameCount: UInt64
  private let lock = NSLock()
  private var present: Bitmap
  public let holes: Bitmap
  /// Frames fetched, counted once each.
  public private(set) var fetched: UInt64 = 0

  /// Creates (replacing) the cache file at `path`, all holes.
  public init(
    path: String, layout: RAMLayout, source: any PageSource, frameCount: UInt64, holes: [FrameRange]
  ) throws(EngineError) {
    self.path = path
    self.layout = layout
    self.source = source
    self.pageSize = layout.pageSize
    self.frameCount = frameCount
    do { file = try PositionalFile.createSparse(path, size: layout.fileSize) } catch {
      throw EngineError(error.description)
    }
    present = Bitmap(count: frameCount)
    var h = Bitmap(count: frameCount)
    for r in holes { h.set(r, limit: frameCount) }
    self.holes = h
  }

  public func remove() { HostProcess.unlink(path) }

  public func isPresent(_ frame: UInt64) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    return present[frame]
  }

  public var presentBitmap: Bitmap {
    lock.lock()
    defer { lock.unlock() }
    return present
  }

  /// Fetches the frames of `ranges` that are neither present nor holes into the cache file, in
  /// reads of up to 256 frames; returns how many frames this call added. Two callers may fetch
  /// the same frame at once: both write the same bytes, and it is counted once.
  @discardableResult
  public func ensure(_ ranges: [FrameRange], buffer: UnsafeMutableRawBufferPointer) throws(EngineError) -> UInt64 {
    var added: UInt64 = 0
    let maxFrames = UInt64(buffer.count) / pageSize
    for r in ranges {
      let clipped = FrameRange(start: r.start, count: r.start < frameCount ? min(r.count, frameCount - r.start) : 0)
      for run in layout.fileRuns(clipped) {
        var k: UInt64 = 0
        while k < run.count {
          // The next stretch of missing frames, at most one buffer long.
          lock.lock()
          while k < run.count && (present[run.frame + k] || holes[run.frame + k]) { k += 1 }
          var n: UInt64 = 0
          while k + n < run.count && n < maxFrames && !present[run.frame + k + n] && !holes[run.frame + k + n] { n += 1 }
          lock.unlock()
          if n == 0 { break }
          let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(n * pageSize)])
          let offset = run.fileOffset + k * pageSize
          try source.read(into: bytes, at: offset)
          do { try file.write(UnsafeRawBufferPointer(bytes), at: offset) } catch { throw EngineError(error.description) }
          lock.lock()
          for f in (run.frame + k)..<(run.frame + k + n) where !present[f] {
            present.insert(f)
            added += 1
          }
          lock.unlock()
          k += n
        }
      }
    }
    lock.lock()
    fetched += added
    lock.unlock()
    return added
  }

  /// Bulk fetch (a resume set, a working set): the missing frames of `ranges`, cut into stripes
  /// of at most `stripeFrames`, copied by `parallelism` workers at once, each on its own thread
  /// (they mostly wait on the source, so more of them than CPUs still pays) with its own buffer
  /// and, over NBD, its own connection kept busy with a window of requests. A worker marks its
  /// frames present a batch of stripes at a time, as they land.
  @discardableResult
  public func ensureInParallel(_ ranges: [FrameRange], parallelism: Int = 4, stripeFrames: UInt64 = 512)
    throws(EngineError) -> UInt64
  {
    let stripe = max(1, min(stripeFrames, 1 << 16))
    // The missing stretches, each within one file run (contiguous in the RAM file).
    var stripes: [(frame: UInt64, offset: UInt64, count: UInt64)] = []
    lock.lock()
    for r in ranges {
      let clipped = FrameRange(start: r.start, count: r.start < frameCount ? min(r.count, frameCount - r.start) : 0)
      for run in layout.fileRuns(clipped) {
        var k: UInt64 = 0
        while k < run.count {
          while k < run.count && (present[run.frame + k] || holes[run.frame + k]) { k += 1 }
          var n: UInt64 = 0
          while k + n < run.count && n < stripe && !present[run.frame + k + n] && !holes[run.frame + k + n] { n += 1 }
          if n > 0 { stripes.append((run.frame + k, run.fileOffset + k * pageSize, n)) }
          k += n
        }
      }
    }
    lock.unlock()
    if stripes.isEmpty { return 0 }
    let all = stripes
    let workers = max(1, min(parallelism, all.count))
    let results = Results(count: workers)
    let group = DispatchGroup()
    for w in 0..<workers {
      group.enter()
      let t = Thread {
        defer { group.leave() }
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(stripe * self.pageSize), alignment: Int(self.pageSize))
        defer { b.deallocate() }
        let mine = stride(from: w, to: all.count, by: workers).map { all[$0] }
        // 16 MiB at a time between markings: frames become present soon after they land, and
        // the source's pipeline drains only that often.
        let perBatch = max(1, Int((4096 as UInt64) / stripe))
        var i = 0
        while i < mine.count {
          let batch = mine[i..<min(i + perBatch, mine.count)]
          do {
            try self.source.copy(batch.map { FileRange(offset: $0.offset, length: $0.count * self.pageSize) }, into: self.file, buffer: b)
          } catch let e as EngineError {
            results.fail(e)
            return
          } catch {
            results.fail(EngineError("\(error)"))
            return
          }
          results.add(w, self.markPresent(batch.map { FrameRange(start: $0.frame, count: $0.count) }))
          i += perBatch
        }
      }
      t.stackSize = 1 << 20
      t.start()
    }
    group.wait()
    if let e = results.error { throw e }
    lock.lock()
    fetched += results.total
    lock.unlock()
    return results.total
  }

  /// Marks the frames of `ranges` present (they are in the cache file); returns how many were not.
  private func markPresent(_ ranges: [FrameRange]) -> UInt64 {
    lock.lock()
    defer { lock.unlock() }
    var added: UInt64 = 0
    for r in ranges {
      for f in r.start..<r.end where !present[f] {
        present.insert(f)
        added += 1
      }
    }
    return added
  }

  /// Per-worker totals and the first error of a parallel fetch.
  final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var totals: [UInt64]
    private(set) var error: EngineError?
    init(count: Int) { totals = [UInt64](repeating: 0, count: count) }
    func add(_ w: Int, _ n: UInt64) {
      lock.lock()
      totals[w] += n
      lock.unlock()
    }
    func fail(_ e: EngineError) {
      lock.lock()
      if error == nil { error = e }
      lock.unlock()
    }
    var total: UInt64 { totals.reduce(0, +) }
  }

  /// Marks a frame not present, so the next `ensure` writes it again. For a frame that faults
  /// while marked present: its page left the cache file (a hole punched into it), and waking the
  /// clone again would only fault again.
  public func forget(_ frame: UInt64) {
    lock.lock()
    if frame < frameCount && present[frame] {
      present.remove(frame)
      fetched -= 1
    }
    lock.unlock()
  }

  /// True if the frame's page is in the cache file (SEEK_DATA), so a clone's fault on it is
  /// mapped by the kernel once woken.
  public func hasData(_ frame: UInt64) -> Bool {
    guard let offset = layout.fileOffset(frame: frame) else { return false }
    return file.hasData(at: offset)
  }

  /// Pages of the cache file resident in memory (tmpfs: its written pages).
  public func residentPages() -> UInt64 {
    (file.identity?.allocatedBytes ?? 0) / pageSize
  }
}
