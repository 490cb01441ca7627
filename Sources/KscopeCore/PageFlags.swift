/// Per-frame flags, stored beside the color in a frame entry's 11 upper bits.
///
/// Bit positions are part of the color map format: add flags in unused bits, never move one.
public struct PageFlags: OptionSet, Sendable, Hashable {
  public let rawValue: UInt16
  public init(rawValue: UInt16) { self.rawValue = rawValue }

  /// Mapped into at least one process's page table.
  public static let mapped = PageFlags(rawValue: 1 << 5)
  /// Mapped executable (user code) or kernel text.
  public static let executable = PageFlags(rawValue: 1 << 6)
  /// Dirty: modified since it was last written back (page cache) or never backed (anon).
  public static let dirty = PageFlags(rawValue: 1 << 7)
  /// Mapped more than once (shared between processes or mappings).
  public static let shared = PageFlags(rawValue: 1 << 8)
  /// Part of a huge page (THP or hugetlbfs).
  public static let huge = PageFlags(rawValue: 1 << 9)
  /// Recently referenced (the kernel's referenced/accessed bit).
  public static let referenced = PageFlags(rawValue: 1 << 10)
  /// Unevictable or mlocked.
  public static let locked = PageFlags(rawValue: 1 << 11)
  /// The color came from the guest agent's hints rather than host introspection.
  public static let hinted = PageFlags(rawValue: 1 << 12)
  /// Sources disagreed, or guest data about this frame was inconsistent.
  public static let anomaly = PageFlags(rawValue: 1 << 13)

  /// Every flag with its stable name, in bit order.
  public static let named: [(PageFlags, String)] = [
    (.mapped, "mapped"), (.executable, "executable"), (.dirty, "dirty"), (.shared, "shared"),
    (.huge, "huge"), (.referenced, "referenced"), (.locked, "locked"), (.hinted, "hinted"),
    (.anomaly, "anomaly"),
  ]

  /// Bits 0-4 hold the color; everything above is flags.
  public static let allBits: UInt16 = 0xFFE0

  public var names: [String] { PageFlags.named.filter { contains($0.0) }.map(\.1) }

  public init?(names: [String]) {
    var f = PageFlags()
    for n in names {
      guard let (flag, _) = PageFlags.named.first(where: { $0.1 == n }) else { return nil }
      f.insert(flag)
    }
    self = f
  }
}

/// One frame's entry in a color map: color in bits 0-4, flags in bits 5-15.
public struct FrameEntry: Sendable, Hashable {
  public var rawValue: UInt16

  public init(rawValue: UInt16) { self.rawValue = rawValue }
  public init(_ color: Color, _ flags: PageFlags = []) {
    rawValue = UInt16(color.rawValue) | (flags.rawValue & PageFlags.allBits)
  }

  public var colorCode: UInt8 { UInt8(truncatingIfNeeded: rawValue & 0x1F) }
  /// The color; codes this version does not know read as `unknown` (the reader rejects them).
  public var color: Color { Color(rawValue: colorCode) ?? .unknown }
  public var flags: PageFlags { PageFlags(rawValue: rawValue & PageFlags.allBits) }
}
