import CKscopeLinux

#if canImport(Glibc)
  import Glibc
#endif

/// A userfaultfd: the clone side registers guest RAM with it, the engine side reads its events
/// and answers them. The ioctls are C macros and its messages a union, so the calls go through
/// CKscopeLinux; this is their one Swift face.
public struct Userfaultfd: Sendable {
  public let fd: Int32
  public init(fd: Int32) { self.fd = fd }

  /// The features of the clone hand-off ABI (kscope_handoff.h): REMOVE, UNMAP and REMAP events.
  public static let handoffFeatures = kscope_uffd_features

  /// A new non-blocking uffd, UFFDIO_API done with `features`.
  public static func open(features: UInt64 = handoffFeatures) throws(OSError) -> Userfaultfd {
    let fd = kscope_uffd_open(features)
    guard fd >= 0 else {
      throw OSError(path: "userfaultfd", operation: "open (UFFDIO_API)", errno: -fd)
    }
    return Userfaultfd(fd: fd)
  }

  public func close() { _ = Glibc.close(fd) }

  /// Registers [start, start+length) for MISSING faults.
  public func registerMissing(start: UInt64, length: UInt64) throws(OSError) {
    let r = kscope_uffd_register_missing(fd, start, length)
    if r < 0 { throw OSError(path: "userfaultfd", operation: "register a range", errno: -r) }
  }

  public func unregister(start: UInt64, length: UInt64) throws(OSError) {
    let r = kscope_uffd_unregister(fd, start, length)
    if r < 0 { throw OSError(path: "userfaultfd", operation: "unregister a range", errno: -r) }
  }

  /// What an answer to a fault (UFFDIO_WAKE, UFFDIO_ZEROPAGE) came to.
  public enum Outcome: Equatable, Sendable {
    case done
    /// EEXIST: a page is already mapped there (another thread's fault got it first).
    case exists
    /// EAGAIN: an event (REMOVE, UNMAP, REMAP) is pending; read it, then answer again.
    case again
    /// ENOENT: the range is no longer registered there (unmapped or replaced).
    case notRegistered
    /// ESRCH: the owner's address space is gone (the clone exited).
    case ownerGone
    case failed(errno: Int32)

    init(_ r: Int32) {
      switch -r {
      case 0: self = .done
      case EEXIST: self = .exists
      case EAGAIN: self = .again
      case ENOENT: self = .notRegistered
      case ESRCH: self = .ownerGone
      default: self = .failed(errno: -r)
      }
    }
  }

  /// Wakes the threads waiting on faults in [start, start+length).
  public func wake(start: UInt64, length: UInt64) -> Outcome {
    r(kscope_uffd_wake(fd, start, length))
  }

  /// Maps zero pages at [start, start+length) in the owner only, and wakes.
  public func zeroPage(start: UInt64, length: UInt64) -> Outcome {
    r(kscope_uffd_zeropage(fd, start, length))
  }

  private func r(_ v: Int32) -> Outcome { v >= 0 ? .done : Outcome(v) }

  /// One message from the uffd.
  public enum Event: Equatable, Sendable {
    case pageFault(address: UInt64, write: Bool)
    /// MADV_DONTNEED (or MADV_REMOVE) of [start, end) in the owner.
    case remove(start: UInt64, end: UInt64)
    /// munmap of [start, end) (or a mapping placed over it).
    case unmap(start: UInt64, end: UInt64)
    /// mremap of `length` bytes from `from` to `to`.
    case remap(from: UInt64, to: UInt64, length: UInt64)
    case other
  }

  /// The next message, or nil when none is pending.
  public func read() throws(OSError) -> Event? {
    var e = kscope_uffd_event()
    let r = kscope_uffd_read(fd, &e)
    if r < 0 { throw OSError(path: "userfaultfd", operation: "read an event", errno: -r) }
    switch e.kind {
    case 0: return nil
    case 1: return .pageFault(address: e.address, write: e.write != 0)
    case 2: return .remove(start: e.address, end: e.end)
    case 3: return .unmap(start: e.address, end: e.end)
    case 4: return .remap(from: e.address, to: e.to, length: e.length)
    default: return .other
    }
  }
}

/// A private, writable mapping of a whole file: a clone's view of the host cache file, where its
/// writes are its own copies. Also what a clone does to its memory (give pages back, unmap or
/// move part of it), which the engine hears as userfaultfd events.
public final class PrivateMapping: @unchecked Sendable {
  public let base: UnsafeMutableRawPointer
  public let size: Int
  private var mapped = true

  /// Maps the file at `path` (read-only open; copy-on-write mapping).
  public init(path: String, size: Int) throws(OSError) {
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else { throw OSError(path: path, operation: "open", errno: errno) }
    defer { _ = Glibc.close(fd) }
    guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), p != MAP_FAILED
    else {
      throw OSError(path: path, operation: "map privately", errno: errno)
    }
    base = p
    self.size = size
  }

  deinit { unmap() }

  public var address: UInt64 { UInt64(UInt(bitPattern: base)) }

  /// Unmaps the whole mapping (once).
  public func unmap() {
    if mapped { _ = munmap(base, size) }
    mapped = false
  }

  /// madvise(MADV_DONTNEED): the pages of [offset, offset+length) are dropped from this mapping;
  /// the next touch maps the file's page again (or faults, where the file has none).
  public func discard(offset: Int, length: Int) throws(OSError) {
    guard madvise(base + offset, length, MADV_DONTNEED) == 0 else {
      throw OSError(path: "private mapping", operation: "madvise(MADV_DONTNEED)", errno: errno)
    }
  }

  /// munmap of part of the mapping.
  public func unmap(offset: Int, length: Int) throws(OSError) {
    guard munmap(base + offset, length) == 0 else {
      throw OSError(path: "private mapping", operation: "munmap", errno: errno)
    }
  }

  /// Moves [offset, offset+length) of the mapping to a fresh address (mremap); returns it.
  public func move(offset: Int, length: Int) throws(OSError) -> UnsafeMutableRawPointer {
    // A reserved spot to move onto, so the kernel cannot leave it in place.
    guard let spot = mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
      spot != MAP_FAILED
    else {
      throw OSError(path: "private mapping", operation: "reserve address space", errno: errno)
    }
    let r = kscope_mremap_fixed(base + offset, length, spot)
    guard r == 0 else {
      _ = munmap(spot, length)
      throw OSError(path: "private mapping", operation: "mremap", errno: -r)
    }
    return spot
  }

  /// Present pages of [offset, offset+length) and, of those, the private ones (pagemap), with
  /// one bit per present page in `bits` when given.
  public func residency(offset: Int, length: Int, bits: inout [UInt64]) throws(OSError) -> (
    present: UInt64, privatePages: UInt64
  ) {
    var present: UInt64 = 0
    var priv: UInt64 = 0
    let start = address + UInt64(offset)
    let r = bits.withUnsafeMutableBufferPointer {
      kscope_pagemap_scan(start, UInt64(length), &present, &priv, $0.baseAddress)
    }
    if r < 0 { throw OSError(path: "/proc/self/pagemap", operation: "read", errno: -r) }
    return (present, priv)
  }
}

extension OSError {
  /// The system's text for an errno value.
  public static func text(errno e: Int32) -> String { String(cString: strerror(e)) }
}
