// swift-tools-version: 6.0
// kscope: VM state coloring and cloud micro-elasticity (Kaleidoscope, EuroSys'11) in Swift.
//
// Dependencies point one way: executables -> engines -> adapters (OS, libdw) -> KscopeCore.
import PackageDescription

// Warnings are errors in debug builds (what tests and CI build).
let strict: [SwiftSetting] = [.unsafeFlags(["-warnings-as-errors"], .when(configuration: .debug))]
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

let package = Package(
  name: "kscope",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "kscope", targets: ["kscope"]),
    .executable(name: "kscope-bench", targets: ["kscope-bench"]),
    .executable(name: "kscope-agent", targets: ["kscope-agent"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    .package(url: "https://github.com/swift-extras/swift-extras-base64", from: "1.2.0"),
  ],
  targets: [
    // Pure logic: colors, the color map format, classification rules. No Foundation, no Glibc.
    .target(name: "KscopeCore", swiftSettings: strict),
    // The one operating-system layer, on apple/swift-system (FileDescriptor, Errno, Stat).
    // Syscalls and `import Glibc` live here (and in the C shims), nowhere else. It offers:
    //   FileError (alias OSError): operation + path + errno, one line, control chars escaped;
    //   Files.retrying: the one EINTR policy (swift-system calls use retryOnInterrupt: true);
    //   Files.read/readBounded/openRegular/create/remove: regular files only, sizes bounded;
    //   Files.writeAtomically: THE atomic write (temp file, fsync, rename, fsync of the dir;
    //     replaces only a regular file, never a device, FIFO, socket, directory or link);
    //   ConfinedDirectory/OpenFile: files opened beneath a directory, no link followed out;
    //   MappedFile: read-only mappings, and its non-zero 64 KiB blocks;
    //   SparseFile: the one SEEK_DATA/SEEK_HOLE walker, sparse copy, allocated bytes;
    //   Memory: the one zero-block test, memchr/memcmp/strnlen searches;
    //   MonotonicClock: the one clock for durations; ProcessUsage: CPU time, peak RSS, pid,
    //     executable path, environment; ChildProcess: spawn + wait4 with the child's rusage;
    //   FileAccess: positioned and line-by-line reads, writes to sysfs attributes;
    //   Directories: listings, lstat/fstat status, mkdir, rename, mknod, exclusive create;
    //   SharedMapping: a read-write MAP_SHARED file (the agent's hint region);
    //   PageResidency: mincore, MADV_POPULATE_READ and the pagemap window (page-cache scan);
    //   Signals: blocked signals collected with sigtimedwait, kill, process liveness;
    //   SystemInfo: page size, kernel release, RSS, stderr and exit without Foundation;
    //   KernelRandom: RNDADDENTROPY + RNDRESEEDCRNG (clone reseeding);
    //   StreamSocket: unix and loopback stream sockets, SCM_RIGHTS, deadline-bounded reads.
    // KscopeCore is used for TerminalSafe (one-line error texts).
    .target(
      name: "KscopeOS",
      dependencies: ["KscopeCore", "CKscopeLinux", .product(name: "SystemPackage", package: "swift-system")],
      swiftSettings: strict),
    // elfutils (libelf + libdw) as a C module, for the guest kernel's ELF and DWARF.
    .systemLibrary(
      name: "CElfutils", pkgConfig: "libdw", providers: [.apt(["libdw-dev", "libelf-dev"])]),
    // Kernel layouts: symbols, struct offsets, enums; Volatility ISF JSON in and out.
    // Base64 of ISF constant_data from swift-extras-base64.
    .target(
      name: "KscopeLayout",
      dependencies: [
        "KscopeCore", "KscopeOS", .product(name: "ExtrasBase64", package: "swift-extras-base64"),
      ],
      swiftSettings: strict),
    // The guest vmlinux's ELF symbols and DWARF through libdw -> a kernel layout.
    .target(
      name: "KscopeDebugInfo", dependencies: ["KscopeCore", "KscopeOS", "KscopeLayout", "CElfutils"],
      swiftSettings: strict),
    // Color map files (validated open, atomic write), their text and JSON descriptions, and the
    // kpageflags producer: what the CLI and the benchmarks share about maps (named for maps,
    // not for the host: everything but the agent runs on the host).
    .target(
      name: "KscopeMaps", dependencies: ["KscopeCore", "KscopeOS", logging],
      swiftSettings: strict),
    // The snapshot model, below everything that reads or writes snapshots (VM layer, analyzer,
    // clone engine, CLI, benchmarks): manifest.json decoded and validated in one place, the one
    // guest-RAM region type, the snapshot directory opened without leaving it, the mapped RAM
    // and its content digest, the hint region file. A target of its own (not inside KscopeOS or
    // KscopeCore) because it is kscope's format, not the OS, and it needs Foundation's JSON.
    // libxxhash's XXH3 for the RAM content digest (per-block hashes, on both cores).
    .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash", providers: [.apt(["libxxhash-dev"])]),
    .target(name: "KscopeSnapshot", dependencies: ["KscopeCore", "KscopeOS", "CXXHash"], swiftSettings: strict),
    // Host analyzer, in phases (kernel location, section walk, struct page rules, page-cache
    // identity, process walk, zero scan, header, hint merge) over guest physical memory.
    .target(
      name: "KscopeAnalyzer",
      dependencies: ["KscopeCore", "KscopeOS", "KscopeLayout", "KscopeSnapshot", logging],
      swiftSettings: strict),
    // Coloring a guest as a library call (`Coloring.color`): a snapshot or RAM file in, the
    // kernel layout resolved (cache, DWARF, BTF), the hints read and checked, the analyzer run,
    // the header completed. `kscope color` and `kscope-bench color` both call it. KscopeVM only
    // for `GuestKernel.find` (kscope's kernel cache, by build id).
    .target(
      name: "KscopeColoring",
      dependencies: [
        "KscopeCore", "KscopeOS", "KscopeSnapshot", "KscopeLayout", "KscopeAnalyzer", "KscopeDebugInfo",
        "KscopeKernelImage", "KscopeVM", "KscopeHints", logging,
      ],
      swiftSettings: strict),
    // zlib as a C module, for PNG pictures of color maps.
    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    // Pictures of color maps: frames along a Hilbert curve, legend, PNG.
    .target(name: "KscopeRender", dependencies: ["KscopeCore", "CZlib"], swiftSettings: strict),
    // Kernel images without debug info: vmlinuz decompression (zstd, lz4, xz, gzip) -> .BTF,
    // kallsyms and .notes -> a kernel layout.
    .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
    .systemLibrary(name: "CLz4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
    .systemLibrary(name: "CLzma", pkgConfig: "liblzma", providers: [.apt(["liblzma-dev"])]),
    .target(
      name: "KscopeKernelImage",
      dependencies: ["KscopeCore", "KscopeOS", "KscopeLayout", "CZstd", "CLz4", "CLzma", "CZlib"],
      swiftSettings: strict),
    // The hint region reader: a seqlock-consistent copy of a region file (bounded, retried
    // when stale), then the format's validation (KscopeCore's HintFormat, where the format
    // stays because KscopeVM's HintFit uses it). The one reader of hint files: `kscope hints
    // read`, `kscope color`, the benchmarks and tests. No Foundation, so the agent may use it.
    .target(name: "KscopeHints", dependencies: ["KscopeCore", "KscopeOS"], swiftSettings: strict),
    // The guest agent's engine: gathers hints inside the guest and publishes them to the
    // shared-memory channel (the kernel's BTF compressed with zstd). No Foundation: it ships
    // as a small static binary.
    .target(
      name: "KscopeAgent", dependencies: ["KscopeCore", "KscopeOS", "CZstd"],
      swiftSettings: strict),
    .executableTarget(name: "kscope-agent", dependencies: ["KscopeAgent", "KscopeOS"], swiftSettings: strict),
    // Clone policies over a color map, the access-trace format, the RAM layout (over the
    // snapshot model's GuestRAMRegion) and the policy simulator: pure decisions, no syscalls
    // (the engine does the fetching).
    .target(
      name: "KscopeClone",
      dependencies: ["KscopeCore", "KscopeSnapshot", .product(name: "Histogram", package: "hdrhistogram-swift")],
      swiftSettings: strict),
    // Linux interfaces Swift cannot reach directly (userfaultfd ioctls and messages, SCM_RIGHTS,
    // pagemap), and the clone hand-off ABI (kscope_handoff.h) shared with the QEMU shim.
    .target(name: "CKscopeLinux"),
    // A read-only NBD client on libnbd's asynchronous API (the engine's remote page source).
    .target(name: "CKscopeNBD", linkerSettings: [.linkedLibrary("nbd")]),
    // The clone engine: the host cache file, page sources, userfaultfd handlers, background
    // prefetch, and the replay clone.
    .target(
      name: "KscopeEngine", dependencies: ["KscopeCore", "KscopeOS", "KscopeClone", "CKscopeLinux", "CKscopeNBD"],
      swiftSettings: strict),
    // OpenSSL's libcrypto as a C module, for SHA-256 (image cache keys, workload digests).
    .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
    // Parent VMs under QEMU: images, boot, QMP, snapshots, eager clones, workload drivers.
    .target(
      name: "KscopeVM", dependencies: ["KscopeCore", "KscopeOS", "KscopeSnapshot", "CCrypto", logging],
      swiftSettings: strict),
    .executableTarget(
      name: "kscope",
      dependencies: [
        "KscopeCore", "KscopeOS", "KscopeMaps", "KscopeLayout", "KscopeDebugInfo", "KscopeVM",
        "KscopeRender", "KscopeHints", "KscopeAnalyzer", "KscopeClone",
        "KscopeEngine", "KscopeKernelImage", "KscopeSnapshot", "KscopeColoring",
        .product(name: "ArgumentParser", package: "swift-argument-parser"), logging,
      ],
      swiftSettings: strict),
    .executableTarget(
      name: "kscope-bench",
      dependencies: [
        "KscopeCore", "KscopeOS", "KscopeMaps", "KscopeLayout", "KscopeDebugInfo", "KscopeAnalyzer",
        "KscopeVM", "KscopeClone", "KscopeEngine", "CKscopeLinux", "KscopeKernelImage", "KscopeSnapshot",
        "KscopeColoring", "KscopeHints",
      ],
      swiftSettings: strict),
    // What the test targets share: running the built executables, the kernel cache, a sample
    // snapshot. A regular target under Tests/ (test targets cannot depend on test targets).
    .target(
      name: "KscopeTestSupport", dependencies: ["KscopeOS", "KscopeSnapshot"], path: "Tests/KscopeTestSupport",
      swiftSettings: strict),
    .testTarget(name: "KscopeCoreTests", dependencies: ["KscopeCore"], swiftSettings: strict),
    .testTarget(
      name: "KscopeSnapshotTests", dependencies: ["KscopeCore", "KscopeOS", "KscopeSnapshot", "KscopeTestSupport"],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeHostTests", dependencies: ["KscopeTestSupport", "KscopeCore", "KscopeOS", "KscopeMaps"],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeLayoutTests",
      dependencies: ["KscopeTestSupport", "KscopeCore", "KscopeOS", "KscopeLayout", "KscopeDebugInfo", "KscopeKernelImage"],
      resources: [.copy("Recorded")], swiftSettings: strict),
    .testTarget(
      name: "KscopeAnalyzerTests",
      dependencies: [
        "KscopeTestSupport",
        "KscopeCore", "KscopeOS", "KscopeLayout", "KscopeAnalyzer", "KscopeMaps", "KscopeDebugInfo",
        "KscopeVM", "KscopeSnapshot", "KscopeColoring", "KscopeClone",
      ],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeRenderTests", dependencies: ["KscopeTestSupport", "KscopeCore", "KscopeRender"],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeAgentTests",
      dependencies: [
        "KscopeTestSupport", "KscopeCore", "KscopeOS", "KscopeHints", "KscopeAgent", "KscopeLayout",
        "KscopeKernelImage",
      ],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeCloneTests",
      dependencies: ["KscopeTestSupport", "KscopeCore", "KscopeSnapshot", "KscopeClone", "KscopeEngine"],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeVMTests", dependencies: ["KscopeTestSupport", "KscopeCore", "KscopeOS", "KscopeVM"],
      swiftSettings: strict),
  ]
)
