// How a kernel marks a page's type (buddy, page table, slab, ...) in `page.page_type`.
//
// The encoding changed across versions and is mostly defined by macros, which DWARF does not
// carry. Two sources, and nothing else (never a guess):
// - DWARF `enum pagetype` (Linux 6.12 has it): the top byte of page_type holds a PGTY_ value.
// - A kscope rule for releases whose encoding exists only as macros, copied as numbers from
//   that release's include/linux/page-flags.h. Rule for 6.1 (checked against Debian's
//   linux-headers-6.1.0-56-common, 6.1.192): PAGE_TYPE_BASE 0xf0000000, PG_buddy 0x80,
//   PG_offline 0x100, PG_table 0x200, PG_guard 0x400; a type is set when
//   `(page_type & (PAGE_TYPE_BASE | PG_x)) == PAGE_TYPE_BASE` (the bit is *cleared*).
//   The rule is recorded in the layout as the enum `kscope_page_type`.
// At run time the guest's vmcoreinfo (NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=...) can confirm the
// buddy value; vmcoreinfo is built by the running kernel, so it is not in the vmlinux file.

/// The page types kscope classifies by.
public enum PageType: String, Sendable, CaseIterable {
  case buddy, offline, table, `guard`, hugetlb, slab, zsmalloc, unaccepted
}

public enum PageTypeEncoding: Equatable, Sendable {
  /// Up to 6.8 (6.1 verified): page_type starts all ones; a type clears its bit below base.
  case clearedBit(base: UInt32, bits: [PageType: UInt32])
  /// 6.12: the top byte of page_type is a PGTY_ value.
  case topByte([PageType: UInt8])

  public static let dwarfEnumName = "pagetype"
  public static let ruleEnumName = "kscope_page_type"

  /// Whether a page whose `page_type` member holds `pageType` has type `type`. A type the
  /// encoding does not define (slab on 6.1, a page flag there) is never set.
  public func has(_ type: PageType, pageType: UInt32) -> Bool {
    switch self {
    case .clearedBit(let base, let bits):
      guard let bit = bits[type] else { return false }
      return pageType & (base | bit) == base
    case .topByte(let values):
      guard let value = values[type] else { return false }
      return UInt8(truncatingIfNeeded: pageType >> 24) == value
    }
  }

  /// The kscope rule for a release whose page_type encoding is only in macros, as an enum to
  /// record in the layout; nil when there is no rule (then DWARF must have `enum pagetype`).
  public static func ruleEnum(forRelease release: String?) -> EnumType? {
    guard let release, let (major, minor) = majorMinor(release) else { return nil }
    guard major == 6, minor == 1 else { return nil }
    return EnumType(
      size: 4, base: "unsigned int",
      constants: [
        "PAGE_TYPE_BASE": 0xf000_0000, "PG_buddy": 0x80, "PG_offline": 0x100,
        "PG_table": 0x200, "PG_guard": 0x400,
      ])
  }

  /// "6.12.117+deb12-cloud-amd64" -> (6, 12).
  static func majorMinor(_ release: String) -> (Int, Int)? {
    let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2)
    guard parts.count == 2, let major = Int(parts.first!), let minor = Int(parts.last!) else {
      return nil
    }
    return (major, minor)
  }
}

extension KernelLayout {
  /// The page_type encoding of this kernel, from DWARF's `enum pagetype` or the recorded
  /// kscope rule; an error when the layout has neither.
  public func pageTypeEncoding() throws(LayoutError) -> PageTypeEncoding {
    if let pagetype = enums[PageTypeEncoding.dwarfEnumName] {
      var values: [PageType: UInt8] = [:]
      for type in PageType.allCases {
        if let v = pagetype.constants["PGTY_\(type.rawValue)"], let byte = UInt8(exactly: v) {
          values[type] = byte
        }
      }
      return .topByte(values)
    }
    if let rule = enums[PageTypeEncoding.ruleEnumName],
      let base = rule.constants["PAGE_TYPE_BASE"].flatMap({ UInt32(exactly: $0) })
    {
      var bits: [PageType: UInt32] = [:]
      for type in PageType.allCases {
        if let v = rule.constants["PG_\(type.rawValue)"], let bit = UInt32(exactly: v) {
          bits[type] = bit
        }
      }
      return .clearedBit(base: base, bits: bits)
    }
    throw .noPageTypeRule(release: release)
  }
}
