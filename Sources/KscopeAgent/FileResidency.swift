import KscopeCore
import KscopeOS

/// Which pages of one open file are in the page cache, and (optionally) which frames hold
/// them. The unsafe part of the page-cache scan, kept to this file:
///
/// - residency: mmap the file (PROT_READ, MAP_SHARED, no I/O), mincore() over the mapping;
/// - frames: madvise(MADV_POPULATE_READ) on the resident runs maps those pages into the agent
///   (they are already cached, so no I/O unless one was evicted in between; unlike touching
///   the pages, it fails with EFAULT rather than SIGBUS if the file shrank meanwhile), then
///   /proc/self/pagemap gives each page's frame (bits 0-54, non-zero for root only).
///   The mapping is removed right after, so the agent's own map count on these pages lasts
///   only as long as the scan of one file.
final class FileResidency {
  static let batch = 1024
  let pageSize: Int
  let pagemap: Int32?
  private var vector: [UInt8] = []
  private var pagemapBuffer: [UInt8] = []

  init(pageSize: Int, wantFrames: Bool) {
    self.pageSize = pageSize
    pagemap = wantFrames ? Files.openRead("/proc/self/pagemap") : nil
  }

  deinit { if let pagemap { Files.closeDescriptor(pagemap) } }

  struct Result {
    var resident: UInt64
    var extents: [FileExtent]
    var framesKnown: Bool
  }

  /// Scans an open regular file of `size` bytes. nil when it cannot be mapped.
  func scan(fd: Int32, size: UInt64) -> Result? {
    let pages = Int((size + UInt64(pageSize) - 1) / UInt64(pageSize))
    guard pages > 0, let length = Int(exactly: size) else { return nil }
    guard let window = PageResidency(fd: fd, length: length, pageSize: pageSize),
      window.resident(into: &vector)
    else { return nil }

    // Runs of resident pages.
    var runs: [(first: Int, count: Int)] = []
    var resident: UInt64 = 0
    var i = 0
    while i < pages {
      if vector[i] & 1 == 0 {
        i += 1
        continue
      }
      var j = i + 1
      while j < pages && vector[j] & 1 != 0 { j += 1 }
      runs.append((i, j - i))
      resident += UInt64(j - i)
      i = j
    }
    guard resident > 0 else { return Result(resident: 0, extents: [], framesKnown: false) }

    guard let pagemap else {
      return Result(
        resident: resident,
        extents: runs.flatMap { Self.split($0.first, $0.count, frame: nil) }, framesKnown: false)
    }
    var extents: [FileExtent] = []
    var anyFrame = false
    for whole in runs {
      // At most 1024 pages (4 MiB) mapped at a time: MADV_DONTNEED drops them from the agent's
      // page table again (the page cache keeps them), so its RSS does not grow with the files.
      var piece = 0
      while piece < whole.count {
        let run = (first: whole.first + piece, count: min(Self.batch, whole.count - piece))
        piece += run.count
        let populated = window.populate(first: run.first, count: run.count)
        let frames = populated ? readFrames(pagemap, window.address(ofPage: run.first), run.count) : nil
        window.release(first: run.first, count: run.count)
        guard let frames else {
          extents += Self.split(run.first, run.count, frame: nil)
          continue
        }
        // Split the run where the frames stop being consecutive (or unknown).
        var a = 0
        while a < run.count {
          var b = a + 1
          if let fa = frames[a] {
            while b < run.count, let fb = frames[b], fb == fa + UInt64(b - a) { b += 1 }
            anyFrame = true
          } else {
            while b < run.count && frames[b] == nil { b += 1 }
          }
          extents += Self.split(run.first + a, b - a, frame: frames[a])
          a = b
        }
      }
    }
    return Result(resident: resident, extents: extents, framesKnown: anyFrame)
  }

  /// The frame of each page of `count` pages at `start` (nil: not present, or no permission).
  private func readFrames(_ fd: Int32, _ start: UInt64, _ count: Int) -> [UInt64?]? {
    let index = start / UInt64(pageSize)
    if pagemapBuffer.count < count * 8 { pagemapBuffer = [UInt8](repeating: 0, count: count * 8) }
    guard Files.read(fd, into: &pagemapBuffer, count: count * 8, at: index * 8) == count * 8 else { return nil }
    var out: [UInt64?] = []
    out.reserveCapacity(count)
    pagemapBuffer.withUnsafeBytes { raw in
      for k in 0..<count {
        let e = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self))
        let present = e & (1 << 63) != 0
        let pfn = e & ((1 << 55) - 1)
        out.append(present && pfn != 0 ? pfn : nil)
      }
    }
    return out
  }

  /// Extents of at most 2^32 - 1 pages each.
  static func split(_ first: Int, _ count: Int, frame: UInt64?) -> [FileExtent] {
    var out: [FileExtent] = []
    var done = 0
    while done < count {
      let n = min(count - done, Int(UInt32.max))
      out.append(
        FileExtent(
          filePage: UInt64(first + done), pages: UInt32(n),
          frame: frame.map { PageFrameNumber($0 + UInt64(done)) }))
      done += n
    }
    return out
  }
}
