import Foundation
import KscopeOS

/// The two workloads, after the paper's Web and OLAP experiments.
public enum Workload: String, Codable, CaseIterable, Sendable {
  /// A static site of several hundred files served by busybox httpd.
  case web
  /// sqlite3 over a generated database, analytic queries run through CGI.
  case olap

  public static func parse(_ s: String) throws -> Workload {
    guard let w = Workload(rawValue: s) else {
      throw VMError.invalidArgument("unknown workload '\(s)' (expected web or olap)")
    }
    return w
  }

  /// The HTTP path that answers 200 once the workload is up.
  var readinessPath: String { self == .web ? "/files.txt" : "/cgi-bin/query?list" }
}

/// What to build an image from. Everything here goes into the image's cache key.
public struct ImageSpec: Sendable {
  public var kernelSeries: String
  public var workload: Workload
  /// Size of the OLAP database in MiB (ignored for web).
  public var olapMiB: Int
  /// Size of the web site in MiB (ignored for olap).
  public var siteMiB = SiteGenerator.defaultSiteMiB
  /// An optional `kscope` binary to install as the guest agent (/usr/bin/kscope).
  public var agent: String?
  /// The repository's `guest-module/` directory (init script, CGI, SQL).
  public var assets: String

  public static let defaultOlapMiB = 200

  public init(
    kernelSeries: String = "6.1", workload: Workload = .web, olapMiB: Int = defaultOlapMiB,
    agent: String? = nil, assets: String
  ) {
    self.kernelSeries = kernelSeries
    self.workload = workload
    self.olapMiB = olapMiB
    self.agent = agent
    self.assets = assets
  }
}

/// A built image: an initramfs (busybox, init, virtio modules, workload programs, optional agent)
/// and a read-only ext4 data disk, cached under `<state>/images/<key>/`.
public struct GuestImage: Codable, Equatable, Sendable {
  public var key: String
  public var directory: String
  public var kernel: GuestKernel
  public var workload: Workload
  public var olapMiB: Int
  public var hasAgent: Bool
  public var initramfs: String { directory + "/initramfs.cpio" }
  public var dataDisk: String { directory + "/data.ext4" }

  /// The load order of the virtio modules. The 6.1 cloud kernel builds all of them as modules;
  /// 6.12 builds the PCI transport and console in, so a name that is not in `modules/` is
  /// taken to be built in (the kernel config is checked to tell that from a broken cache).
  static let moduleOrder = [
    "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
    "virtio_blk", "failover", "net_failover", "virtio_net", "virtio_balloon",
  ]
  static let moduleConfig = [
    "virtio": "CONFIG_VIRTIO", "virtio_ring": "CONFIG_VIRTIO",
    "virtio_pci_legacy_dev": "CONFIG_VIRTIO_PCI_LIB_LEGACY",
    "virtio_pci_modern_dev": "CONFIG_VIRTIO_PCI_LIB", "virtio_pci": "CONFIG_VIRTIO_PCI",
    "virtio_blk": "CONFIG_VIRTIO_BLK", "failover": "CONFIG_FAILOVER",
    "net_failover": "CONFIG_NET_FAILOVER",
    "virtio_net": "CONFIG_VIRTIO_NET", "virtio_balloon": "CONFIG_VIRTIO_BALLOON",
  ]

  /// Finds the repository's guest-module/ directory: $KSCOPE_GUEST_ASSETS, else the first
  /// ancestor of the current directory or of the executable that has guest-module/image/init.
  public static func locateAssets() throws -> String {
    if let env = ProcessInfo.processInfo.environment["KSCOPE_GUEST_ASSETS"], !env.isEmpty {
      return env
    }
    let starts = [
      FileManager.default.currentDirectoryPath,
      URL(fileURLWithPath: CommandLine.arguments.first ?? "/").resolvingSymlinksInPath()
        .deletingLastPathComponent().path,
    ]
    for start in starts {
      var url = URL(fileURLWithPath: start)
      while url.path != "/" {
        let candidate = url.appendingPathComponent("guest-module").path
        if FileManager.default.fileExists(atPath: candidate + "/image/init") { return candidate }
        url.deleteLastPathComponent()
      }
    }
    throw VMError.missingPrerequisite(
      "cannot find guest-module/ (run from the kscope repository or set KSCOPE_GUEST_ASSETS)")
  }

  /// Builds the image or returns the cached one with the same key.
  public static func build(_ spec: ImageSpec, stateDir: String, log: (String) -> Void = { _ in })
    throws -> GuestImage
  {
    guard spec.siteMiB >= 1, spec.siteMiB <= 4096 else {
      throw VMError.invalidArgument("web site size must be 1..4096 MiB, got \(spec.siteMiB)")
    }
    guard spec.olapMiB >= 8, spec.olapMiB <= 4096 else {
      throw VMError.invalidArgument("olap size must be 8..4096 MiB, got \(spec.olapMiB)")
    }
    let kernel = try GuestKernel.resolve(series: spec.kernelSeries)
    let busybox = try ProcessRunner.which("busybox")
    let sqlite = spec.workload == .olap ? try ProcessRunner.which("sqlite3") : nil
    for tool in ["cpio", "mke2fs"] { _ = try ProcessRunner.which(tool) }
    if let agent = spec.agent, !FileManager.default.isExecutableFile(atPath: agent) {
      throw VMError.invalidArgument("agent binary \(agent) is not an executable file")
    }
    let key = try cacheKey(spec, kernel: kernel, busybox: busybox, sqlite: sqlite)
    let dir = stateDir + "/images/" + key
    let fm = FileManager.default
    if let data = fm.contents(atPath: dir + "/image.json"),
      let image = try? JSONDecoder().decode(GuestImage.self, from: data),
      fm.fileExists(atPath: image.initramfs), fm.fileExists(atPath: image.dataDisk)
    {
      return image
    }
    log("building image \(key) (kernel \(kernel.release), workload \(spec.workload.rawValue))")
    removeStaleBuilds(in: stateDir + "/images")
    let tmp = stateDir + "/images/.tmp-\(key)-\(ProcessUsage.id)"
    try? fm.removeItem(atPath: tmp)
    try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: tmp) }

    let root = tmp + "/initramfs"
    try stageInitramfs(
      root: root, spec: spec, kernel: kernel, busybox: busybox, sqlite: sqlite)
    let data = tmp + "/data"
    try fm.createDirectory(atPath: data, withIntermediateDirectories: true)
    switch spec.workload {
    case .web:
      log("generating the web site")
      try SiteGenerator.generate(into: data + "/site", listing: data + "/files.txt", siteMiB: spec.siteMiB)
    case .olap:
      log("generating the OLAP database (\(spec.olapMiB) MiB)")
      try generateDatabase(into: data + "/olap.db", spec: spec, sqlite: sqlite!)
    }

    let out = tmp + "/out"
    try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
    log("writing the initramfs")
    try writeCpio(root: root, to: out + "/initramfs.cpio")
    log("writing the ext4 data disk")
    try makeExt4(from: data, to: out + "/data.ext4")
    let image = GuestImage(
      key: key, directory: dir, kernel: kernel, workload: spec.workload, olapMiB: spec.olapMiB,
      hasAgent: spec.agent != nil)
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try enc.encode(image).write(to: URL(fileURLWithPath: out + "/image.json"))
    try? fm.removeItem(atPath: dir)
    try fm.moveItem(atPath: out, toPath: dir)
    return image
  }

  /// Removes `.tmp-KEY-PID` build directories whose builder is gone (killed mid-build: a
  /// half-built OLAP image is hundreds of MiB in /dev/shm).
  static func removeStaleBuilds(in images: String) {
    let fm = FileManager.default
    for entry in (try? fm.contentsOfDirectory(atPath: images)) ?? [] where entry.hasPrefix(".tmp-") {
      guard let pid = entry.split(separator: "-").last.flatMap({ Int32($0) }), pid > 0,
        pid != ProcessUsage.id, !Signals.processExists(pid)
      else { continue }
      try? fm.removeItem(atPath: images + "/" + entry)
    }
  }

  /// The image built under `<state>/images/<key>/` (its image.json, written by kscope), for a
  /// clone: a snapshot names its image by key, never by path.
  public static func cached(key: String, stateDir: String) throws -> GuestImage {
    guard !key.isEmpty, key.count <= 64,
      key.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) })
    else { throw VMError.badSnapshot("image key is not hexadecimal") }
    let dir = stateDir + "/images/" + key
    let fm = FileManager.default
    guard let data = fm.contents(atPath: dir + "/image.json"),
      let image = try? JSONDecoder().decode(GuestImage.self, from: data),
      image.directory == dir, fm.fileExists(atPath: image.initramfs),
      fm.fileExists(atPath: image.dataDisk)
    else {
      throw VMError.badSnapshot(
        "image \(key) is not in \(stateDir)/images (rebuild it with kscope vm image)")
    }
    return image
  }

  /// Content key: a format version, the kernel's exact release and build-id, the workload and
  /// its size, and the bytes of every input file (assets, busybox, sqlite3, agent).
  static func cacheKey(_ spec: ImageSpec, kernel: GuestKernel, busybox: String, sqlite: String?)
    throws -> String
  {
    var h = SHA256()
    // v2: virtio_balloon joined the modules.
    h.update("kscope-image-v2\n\(kernel.release)\n\(kernel.buildID)\n\(spec.workload.rawValue)\n")
    if spec.workload == .olap { h.update("olap-mib \(spec.olapMiB)\n") }
    // The default site keeps the keys images had before the size was an option.
    if spec.workload == .web && spec.siteMiB != SiteGenerator.defaultSiteMiB {
      h.update("site-mib \(spec.siteMiB)\n")
    }
    var inputs = [busybox]
    if let sqlite { inputs.append(sqlite) }
    if let agent = spec.agent { inputs.append(agent) }
    let fm = FileManager.default
    if let files = fm.enumerator(atPath: spec.assets) {
      for case let rel as String in files {
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: spec.assets + "/" + rel, isDirectory: &isDir), !isDir.boolValue {
          inputs.append(spec.assets + "/" + rel)
        }
      }
    }
    for path in inputs.sorted() {
      guard let bytes = fm.contents(atPath: path) else {
        throw VMError.missingPrerequisite("cannot read \(path)")
      }
      h.update(path.hasPrefix(spec.assets) ? String(path.dropFirst(spec.assets.count)) : path)
      h.update(bytes)
    }
    return String(h.hexDigest().prefix(16))
  }

  static func stageInitramfs(
    root: String, spec: ImageSpec, kernel: GuestKernel, busybox: String, sqlite: String?
  ) throws {
    let fm = FileManager.default
    for d in ["bin", "dev", "etc/kscope", "lib/modules", "proc", "sys", "tmp", "data", "www"] {
      try fm.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
    }
    try copy(busybox, root + "/bin/busybox")
    try copy(spec.assets + "/image/init", root + "/init", mode: 0o755)
    // The kernel opens /dev/console before running init; devtmpfs is not mounted yet.
    try makeCharDevice(root + "/dev/console", major: 5, minor: 1)

    // Virtio modules, decompressed on the host (6.12 ships .ko.xz; busybox insmod wants .ko).
    let config = (try? String(contentsOfFile: kernel.directory + "/config", encoding: .utf8)) ?? ""
    var loaded: [String] = []
    for name in moduleOrder {
      guard let found = findModule(name, in: kernel.modules) else {
        let option = moduleConfig[name] ?? ""
        if config.contains("\n\(option)=y") { continue }  // built into this kernel
        throw VMError.missingPrerequisite(
          "module \(name) is neither in \(kernel.modules) nor built in (\(option))")
      }
      let dest = root + "/lib/modules/\(name).ko"
      if found.hasSuffix(".xz") {
        try ProcessRunner.run([busybox, "xz", "-dc", found], stdoutFile: dest)
      } else {
        try copy(found, dest)
      }
      loaded.append(name)
    }
    try (loaded.joined(separator: "\n") + "\n").write(
      toFile: root + "/etc/kscope/modules", atomically: true, encoding: .utf8)
    try "\(spec.workload.rawValue)\n".write(
      toFile: root + "/etc/kscope/workload", atomically: true, encoding: .utf8)

    // The workload's web root: static files come from the data disk (mounted at /data).
    try fm.createSymbolicLink(
      atPath: root + "/www/index.html", withDestinationPath: "/etc/kscope/index.html")
    try "<html><body>kscope \(spec.workload.rawValue) guest</body></html>\n".write(
      toFile: root + "/etc/kscope/index.html", atomically: true, encoding: .utf8)
    switch spec.workload {
    case .web:
      try fm.createSymbolicLink(atPath: root + "/www/site", withDestinationPath: "/data/site")
      try fm.createSymbolicLink(
        atPath: root + "/www/files.txt", withDestinationPath: "/data/files.txt")
    case .olap:
      try fm.createDirectory(atPath: root + "/www/cgi-bin", withIntermediateDirectories: true)
      try copy(spec.assets + "/olap/query.cgi", root + "/www/cgi-bin/query", mode: 0o755)
      try fm.createDirectory(
        atPath: root + "/etc/kscope/queries", withIntermediateDirectories: true)
      let qdir = spec.assets + "/olap/queries"
      for q in try fm.contentsOfDirectory(atPath: qdir) where q.hasSuffix(".sql") {
        try copy(qdir + "/" + q, root + "/etc/kscope/queries/" + q)
      }
      try installWithLibraries(sqlite!, as: "/usr/bin/sqlite3", root: root)
    }
    if let agent = spec.agent {
      try installWithLibraries(agent, as: "/usr/bin/kscope", root: root)
    }
  }

  static func findModule(_ name: String, in modules: String) -> String? {
    guard let e = FileManager.default.enumerator(atPath: modules + "/kernel") else { return nil }
    for case let rel as String in e {
      let base = (rel as NSString).lastPathComponent
      if base == name + ".ko" || base == name + ".ko.xz" || base == name + ".ko.zst" {
        return modules + "/kernel/" + rel
      }
    }
    return nil
  }

  /// Copies a dynamically linked binary and every library `ldd` names (plus the loader) to the
  /// same paths inside the image.
  static func installWithLibraries(_ binary: String, as target: String, root: String) throws {
    try copy(binary, root + target, mode: 0o755)
    let out = String(decoding: try ProcessRunner.run(["ldd", binary]), as: UTF8.self)
    for line in out.split(separator: "\n") {
      // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
      for word in line.split(whereSeparator: { $0 == " " || $0 == "\t" }) where word.hasPrefix("/")
      {
        let path = String(word)
        if !FileManager.default.fileExists(atPath: root + path) {
          // Resolve symlinks on the host; store the real bytes under the name ldd printed.
          let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
          try copy(real, root + path, mode: 0o755)
        }
      }
    }
  }

  static func copy(_ from: String, _ to: String, mode: Int? = nil) throws {
    let fm = FileManager.default
    try fm.createDirectory(
      atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try? fm.removeItem(atPath: to)
    try fm.copyItem(atPath: from, toPath: to)
    if let mode { try fm.setAttributes([.posixPermissions: mode], ofItemAtPath: to) }
  }

  /// `cpio -o -H newc` of the staging tree, owned by root, in a sorted (reproducible) order.
  static func writeCpio(root: String, to path: String) throws {
    var entries: [String] = []
    if let e = FileManager.default.enumerator(atPath: root) {
      for case let rel as String in e { entries.append(rel) }
    }
    let list = entries.sorted().joined(separator: "\n") + "\n"
    try ProcessRunner.run(
      ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], input: Data(list.utf8), cwd: root,
      stdoutFile: path)
  }

  /// An ext4 image of `dir` with 20% + 16 MiB of slack, built by mke2fs -d (no root, no mount).
  static func makeExt4(from dir: String, to path: String) throws {
    var total: UInt64 = 0
    var count: UInt64 = 0
    if let e = FileManager.default.enumerator(atPath: dir) {
      for case let rel as String in e {
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/" + rel)
        total += (((attrs[.size] as? UInt64) ?? 0) + 4095) / 4096 * 4096
        count += 1
      }
    }
    let mib = (total + total / 5 + count * 8192) / (1 << 20) + 16
    try ProcessRunner.run(
      [
        "mke2fs", "-q", "-F", "-t", "ext4", "-m", "0", "-L", "kscope-data", "-E", "root_owner=0:0",
        "-d", dir, path, "\(mib)M",
      ], environment: ["E2FSPROGS_FAKE_TIME": "1700000000"])
  }

  /// Generates the OLAP database with the host's sqlite3 from guest-module/olap/generate.sql,
  /// scaled so the file is about `olapMiB` MiB.
  static func generateDatabase(into path: String, spec: ImageSpec, sqlite: String) throws {
    let template = try String(contentsOfFile: spec.assets + "/olap/generate.sql", encoding: .utf8)
    // About 75 bytes per lineitem row, orders and customers included (measured with sqlite 3.40).
    let lineitems = spec.olapMiB * 1_048_576 / 75
    let sql = template.replacingOccurrences(of: "@LINEITEMS@", with: String(lineitems))
    try ProcessRunner.run([sqlite, path], input: Data(sql.utf8))
  }
}
