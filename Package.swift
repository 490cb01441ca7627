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
    //     executable path, environment; ChildProcess: spawn + wait4 with the child's rusage.
    // KscopeCore is used for TerminalSafe (one-line error texts).
    .target(
      name: "KscopeOS",
      dependencies: ["KscopeCore", .product(name: "SystemPackage", package: "swift-system")],
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
    // Color map producers and queries used by the CLI and the benchmarks.
    .target(
      name: "KscopeHost", dependencies: ["KscopeCore", "KscopeOS", logging],
      swiftSettings: strict),
    // Host analyzer: guest physical memory, finding the kernel, page-table and struct page
    // walkers, classification into colors.
    .target(
      name: "KscopeAnalyzer", dependencies: ["KscopeCore", "KscopeOS", "KscopeLayout", logging],
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
    // The guest agent's engine: gathers hints inside the guest and publishes them to the
    // shared-memory channel. No Foundation: it ships as a small static binary.
    .target(name: "KscopeAgent", dependencies: ["KscopeCore", "KscopeOS"], swiftSettings: strict),
    .executableTarget(name: "kscope-agent", dependencies: ["KscopeAgent"], swiftSettings: strict),
    // Clone policies over a color map, the access-trace format and the policy simulator: pure
    // decisions, no syscalls (the engine does the fetching).
    .target(
      name: "KscopeClone",
      dependencies: ["KscopeCore", .product(name: "Histogram", package: "hdrhistogram-swift")],
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
      name: "KscopeVM", dependencies: ["KscopeCore", "KscopeOS", "CCrypto", logging],
      swiftSettings: strict),
    .executableTarget(
      name: "kscope",
      dependencies: [
        "KscopeCore", "KscopeOS", "KscopeHost", "KscopeLayout", "KscopeDebugInfo", "KscopeVM",
        "KscopeRender", "KscopeAgent", "KscopeAnalyzer", "KscopeClone",
        "KscopeEngine", "KscopeKernelImage",
        .product(name: "ArgumentParser", package: "swift-argument-parser"), logging,
      ],
      swiftSettings: strict),
    .executableTarget(
      name: "kscope-bench",
      dependencies: [
        "KscopeCore", "KscopeOS", "KscopeHost", "KscopeLayout", "KscopeDebugInfo", "KscopeAnalyzer",
        "KscopeVM", "KscopeClone", "KscopeEngine", "CKscopeLinux", "KscopeKernelImage",
      ],
      swiftSettings: strict),
    .testTarget(name: "KscopeCoreTests", dependencies: ["KscopeCore"], swiftSettings: strict),
    .testTarget(
      name: "KscopeHostTests", dependencies: ["KscopeCore", "KscopeOS", "KscopeHost"],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeLayoutTests",
      dependencies: ["KscopeCore", "KscopeOS", "KscopeLayout", "KscopeDebugInfo", "KscopeKernelImage"],
      resources: [.copy("Recorded")], swiftSettings: strict),
    .testTarget(
      name: "KscopeAnalyzerTests",
      dependencies: [
        "KscopeCore", "KscopeOS", "KscopeLayout", "KscopeAnalyzer", "KscopeHost", "KscopeDebugInfo",
        "KscopeVM",
      ],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeRenderTests", dependencies: ["KscopeCore", "KscopeRender"],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeAgentTests", dependencies: ["KscopeCore", "KscopeOS", "KscopeAgent"],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeCloneTests", dependencies: ["KscopeCore", "KscopeClone", "KscopeEngine"],
      swiftSettings: strict),
    .testTarget(
      name: "KscopeVMTests", dependencies: ["KscopeCore", "KscopeOS", "KscopeVM"],
      swiftSettings: strict),
  ]
)
