import KscopeCore
import KscopeLayout
import KscopeSnapshot

extension Analyzer {
  /// The page-cache-identity phase: each page-cache frame's file, from its mapping
  /// (address_space.host -> inode: i_ino, i_sb -> s_dev), one lookup per mapping; consecutive
  /// frames holding consecutive pages of one file become one extent. A mapping that leads to no
  /// inode is not an address_space: such a frame is `unknown` + `anomaly`, not page cache.
  static func identifyPageCache(
    _ cacheFrames: [CacheFrame], space: KernelAddressSpace, layout: KernelLayout, _ frames: inout FrameTable
  ) -> [AttributeExtent] {
    let hostOff, inoOff, sbOff, devOff: UInt64
    do {
      hostOff = UInt64(try layout.offset(of: "address_space", member: "host"))
      inoOff = UInt64(try layout.offset(of: "inode", member: "i_ino"))
      sbOff = UInt64(try layout.offset(of: "inode", member: "i_sb"))
      devOff = UInt64(try layout.offset(of: "super_block", member: "s_dev"))
    } catch {
      frames.anomaly("layout lacks page-cache types: \(error)")
      return []
    }
    var extents: [AttributeExtent] = []
    var identities: [UInt64: (device: UInt32, inode: UInt64)?] = [:]
    for c in cacheFrames {
      let id: (device: UInt32, inode: UInt64)?
      if let known = identities[c.mapping] {
        id = known
      } else {
        var found: (device: UInt32, inode: UInt64)? = nil
        if let inode = space.u64(c.mapping &+ hostOff), inode != 0,
          let ino = space.u64(inode &+ inoOff), let sb = space.u64(inode &+ sbOff),
          let dev = space.u32(sb &+ devOff)
        {
          found = (dev, ino)
        }
        identities[c.mapping] = found
        id = found
      }
      guard let (dev, ino) = id else {
        frames.set(c.frame, .unknown, .anomaly)
        frames.anomaly("page-cache mapping not readable")
        continue
      }
      if var last = extents.last, last.end == c.frame, let file = last.file, file.device == dev,
        file.inode == ino, file.index &+ last.count == c.index
      {
        last.count += 1
        extents[extents.count - 1] = last
      } else {
        extents.append(
          AttributeExtent(start: c.frame, count: 1, file: FileIdentity(device: dev, inode: ino, index: c.index)))
      }
    }
    return extents
  }

  /// The zero-scan phase: frames in use whose 4 KiB are all zero become `zero` (flags
  /// kept). Free, reserved and already-zero frames are not read. Returns how many changed.
  static func scanZeros(_ memory: any PhysicalMemory, _ frames: inout FrameTable) -> Int {
    let pageSize = GuestKernelView.pageSize
    var zeroed = 0
    for f in 0..<UInt64(frames.entries.count) {
      let e = frames.entry(f)
      guard e.color != .free, e.color != .reserved, e.color != .zero else { continue }
      let isZero = memory.withBytes(at: f * pageSize, count: Int(pageSize)) { raw -> Bool in
        var acc: UInt64 = 0
        for w in 0..<512 { acc |= raw.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) }
        return acc == 0
      }
      if isZero == true {
        frames.set(f, .zero, e.flags)
        zeroed += 1
      }
    }
    return zeroed
  }

  /// The header phase: what produced the map, and the kernel it describes.
  static func header(_ info: VMCoreInfo, zeroScan: Bool, created: Int64) -> ColorMapHeader {
    var sources: ColorSources = .hostIntrospection
    if zeroScan { sources.insert(.contentScan) }
    return ColorMapHeader(
      pageSize: UInt32(GuestKernelView.pageSize), sources: sources, created: created, image: .none,
      kernelRelease: info.release, kernelBuildID: info.buildID,
      metadata: [("generator", "kscope color (host introspection)")])
  }
}
