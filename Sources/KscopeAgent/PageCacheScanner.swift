import KscopeCore
import KscopeOS

/// Finds the guest's cached files from userspace: walks directory trees under chosen roots
/// (never crossing into another filesystem from a root, like `find -xdev`) and asks, per
/// regular file, which of its pages are resident (see FileResidency). Without a kernel module
/// this sees only files reachable by path: deleted-but-open files, anonymous shmem and the
/// metadata caches of filesystems are invisible here.
public struct PageCacheScanner {
  public var roots: [String]
  public var wantFrames: Bool
  /// At most this many files are opened per scan (bounds the agent's CPU on huge trees).
  public var maxFiles: Int
  /// About how many bytes of file records to keep (the region's size: more could never be
  /// published). Beyond twice that, the least resident files are dropped, which bounds the
  /// agent's memory on guests with huge page caches.
  public var keepBytes = 4 << 20
  /// A file never listed: the agent's own region file (st_dev, st_ino).
  public var excluded: (device: UInt64, inode: UInt64)?

  public init(roots: [String], wantFrames: Bool = true, maxFiles: Int = 100_000) {
    self.roots = roots
    self.wantFrames = wantFrames
    self.maxFiles = maxFiles
  }

  /// The default roots: "/" and the mount point of every block-device filesystem
  /// (/proc/self/mounts sources under /dev/), which is where workloads keep their files.
  public static func defaultRoots(mounts: String = "/proc/self/mounts") -> [String] {
    var roots = ["/"]
    Files.forEachLine(mounts) { line in
      let f = line.split(separator: 0x20)
      if f.count >= 2, f[0].starts(with: Array("/dev/".utf8)),
        let dir = decodeUTF8(f[1]), !dir.contains("\\"), !roots.contains(dir)
      {
        roots.append(dir)
      }
      return true
    }
    return roots
  }

  public struct Result {
    public var files: [CachedFile]
    public var filesVisited: Int
    public var hitFileLimit: Bool
    public var unreadable: Int
    /// Resident files left out because more than `keepBytes` of records were found.
    public var dropped: Int
  }

  public func scan(pageSize: Int) -> Result {
    let residency = FileResidency(pageSize: pageSize, wantFrames: wantFrames)
    var files: [CachedFile] = []
    var seen = Set<FileID>()  // hard links are listed once
    var visited = 0
    var unreadable = 0
    var hitLimit = false
    var dropped = 0
    var recordBytes = 0
    func size(_ f: CachedFile) -> Int { 48 + f.path.utf8.count + 24 * f.extents.count }
    outer: for root in roots {
      guard let rootStat = Files.status(root), rootStat.kind == .directory else { continue }
      var stack = [root]
      while let dir = stack.popLast() {
        for e in Files.listDirectory(dir) {
          let path = dir == "/" ? "/" + e.name : dir + "/" + e.name
          var kind = e.kind
          if kind == nil || kind == .directory {
            guard let st = Files.status(path) else { continue }
            kind = st.kind
            if kind == .directory {
              // Stay on the root's filesystem (another mount is its own root, or not scanned).
              if st.device == rootStat.device { stack.append(path) }
              continue
            }
          }
          guard kind == .regular else { continue }
          if visited >= maxFiles {
            hitLimit = true
            break outer
          }
          visited += 1
          // No access time: the scan must not look like use of the file (root or the owner
          // only, so the open is retried without it).
          guard let fd = Files.openRead(path, noFollow: true, nonBlocking: true, noAccessTime: true)
            ?? Files.openRead(path, noFollow: true, nonBlocking: true)
          else {
            unreadable += 1
            continue
          }
          defer { Files.closeDescriptor(fd) }
          guard let st = Files.status(fd: fd), st.kind == .regular, st.size > 0,
            st.device == rootStat.device
          else { continue }
          let key = FileID(device: st.device, inode: st.inode)
          guard !seen.contains(key), excluded?.device != key.device || excluded?.inode != key.inode
          else { continue }
          guard let r = residency.scan(fd: fd, size: UInt64(st.size)), r.resident > 0 else { continue }
          seen.insert(key)
          let file = CachedFile(
            path: path, device: Self.kernelDevice(st.device), inode: st.inode,
            size: UInt64(st.size), residentPages: r.resident, extents: r.extents,
            framesKnown: r.framesKnown)
          files.append(file)
          recordBytes += size(file)
          if recordBytes > 2 * keepBytes {
            // Bound memory the way the encoder fills the region: most resident first, coarse
            // extents (no frames) for every file that fits, frames only while they fit too.
            files.sort { $0.residentPages > $1.residentPages }
            var coarseTotal = 0
            var fineTotal = 0
            var kept = 0
            while kept < files.count {
              let coarse = HintFormat.coarsened(files[kept])
              let c = size(coarse)
              guard coarseTotal + c <= keepBytes else { break }
              coarseTotal += c
              let fine = size(files[kept])
              if fineTotal + fine <= keepBytes {
                fineTotal += fine
              } else {
                files[kept] = coarse
                fineTotal += c
              }
              kept += 1
            }
            dropped += files.count - kept
            files.removeLast(files.count - kept)
            recordBytes = fineTotal
          }
        }
      }
    }
    return Result(
      files: files, filesVisited: visited, hitFileLimit: hitLimit, unreadable: unreadable,
      dropped: dropped)
  }

  struct FileID: Hashable {
    var device: UInt64
    var inode: UInt64
  }

  /// glibc's dev_t (major in bits 8-19 and 32-43, minor in 0-7 and 12-31 and 44-63) as the
  /// kernel's internal encoding, major << 20 | minor, which the host sees in struct inode.
  static func kernelDevice(_ dev: UInt64) -> UInt32 {
    let major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)
    let minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF)
    return UInt32(truncatingIfNeeded: (major << 20) | (minor & 0xF_FFFF))
  }
}
