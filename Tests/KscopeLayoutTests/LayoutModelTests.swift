import KscopeCore
import KscopeLayout
import Testing

// The typed API the walkers use, against the recorded layouts (pure and fast).

@Suite struct LayoutModelTests {
  @Test func recordedLayoutsExistForBothSeries() throws {
    #expect(Recorded.releases.contains(Recorded.release61))
    #expect(Recorded.releases.contains(Recorded.release612))
  }

  @Test(arguments: [Recorded.release61, Recorded.release612])
  func identity(release: String) throws {
    let layout = try Recorded.layout(release)
    #expect(layout.release == release)
    #expect(layout.buildID?.count == 40)
    #expect(layout.banner?.hasPrefix("Linux version \(release) ") == true)
    #expect(layout.sources == [LayoutSource(kind: "dwarf", name: "vmlinux")])
  }

  @Test(arguments: [Recorded.release61, Recorded.release612])
  func pageLayout(release: String) throws {
    let layout = try Recorded.layout(release)
    // struct page is 64 bytes on x86_64 in both series (pahole -C page).
    #expect(try layout.size(of: "page") == 64)
    #expect(try layout.offset(of: "page", member: "flags") == 0)
    // _count was renamed _refcount in 4.6: walkers name both, newest first.
    #expect(try layout.offset(of: "page", member: ["_refcount", "_count"]) == 52)
    #expect(try layout.offset(of: "page", member: ["_count", "_refcount"]) == 52)
    // Members of anonymous unions/structs are flattened with absolute offsets.
    #expect(try layout.offset(of: "page", member: "mapping") == 24)
    #expect(try layout.offset(of: "page", member: "index") == 32)
    #expect(try layout.offset(of: "page", member: "_mapcount") == 48)
    #expect(try layout.offset(of: "page", member: "compound_head") == 8)
    // A dotted path goes through named struct members.
    #expect(try layout.offset(of: "page", member: "lru.next") == 8)
    #expect(try layout.offset(of: "page", member: "lru.prev") == 16)
    #expect(try layout.size(of: "list_head") == 16)
  }

  @Test func taskStructDiffersBetweenSeries() throws {
    let old = try Recorded.layout(Recorded.release61)
    let new = try Recorded.layout(Recorded.release612)
    // Values from pahole -C task_struct on each vmlinux.
    #expect(try old.offset(of: "task_struct", member: "tasks") == 2192)
    #expect(try old.offset(of: "task_struct", member: "comm") == 2976)
    let execve = try old.bitfield(of: "task_struct", member: ["in_execve"])
    #expect(execve.offset == 2344 && execve.position == 2 && execve.length == 1)
    #expect(try new.size(of: "task_struct") != old.size(of: "task_struct"))
  }

  @Test func missingThingsAreNamedErrors() throws {
    let layout = try Recorded.layout(Recorded.release61)
    #expect(throws: LayoutError.missingMember(type: "page", member: ["no_such", "nor_this"])) {
      try layout.offset(of: "page", member: ["no_such", "nor_this"])
    }
    #expect(throws: LayoutError.missingType("slab_nonexistent")) {
      try layout.size(of: "slab_nonexistent")
    }
    #expect(throws: LayoutError.missingSymbol("no_such_symbol")) {
      try layout.requireSymbol("no_such_symbol")
    }
    #expect(throws: LayoutError.missingEnum("no_enum")) { try layout.enumValue("no_enum", "X") }
    #expect(throws: LayoutError.missingEnumConstant(enum: "pageflags", constant: ["PG_nope"])) {
      try layout.enumValue("pageflags", "PG_nope")
    }
    #expect(throws: LayoutError.bitfieldMember(type: "task_struct", member: "in_execve")) {
      try layout.offset(of: "task_struct", member: "in_execve")
    }
    #expect(throws: LayoutError.notAStruct(type: "page", member: "flags")) {
      try layout.offset(of: "page", member: "flags.x")
    }
    #expect(
      LayoutError.missingMember(type: "page", member: ["_refcount", "_count"]).description
        == "no member '_refcount|_count' in 'page'")
  }

  @Test(arguments: [Recorded.release61, Recorded.release612])
  func symbolsAndEnums(release: String) throws {
    let layout = try Recorded.layout(release)
    for name in LayoutRequest.default.symbols {
      let address = try #require(layout.symbol(name), "\(name)")
      // Every kernel image symbol lives in the top 2 GiB of the address space.
      #expect(address >= KernelVirtualAddress(0xffff_ffff_8000_0000), "\(name) at \(address)")
    }
    #expect(layout.symbol("_text") == KernelVirtualAddress(0xffff_ffff_8100_0000))
    #expect(try layout.requireSymbol("_text") < layout.requireSymbol("_etext"))
    #expect(try layout.requireSymbol("__bss_start") < layout.requireSymbol("__bss_stop"))
    #expect(try layout.enumValue("pageflags", "PG_locked") == 0)
    #expect(try layout.enumValue("zone_type", "ZONE_DMA") == 0)
    #expect(try layout.enumValue("migratetype", "MIGRATE_UNMOVABLE") == 0)
    #expect(try layout.enumValue("pageflags", anyOf: ["PG_nope", "PG_head"]) > 0)
  }

  @Test func pageTypeEncodings() throws {
    // 6.1: macros only; kscope's rule (page-flags.h of 6.1) is recorded as an enum.
    let old = try Recorded.layout(Recorded.release61).pageTypeEncoding()
    #expect(
      old
        == .clearedBit(
          base: 0xf000_0000, bits: [.buddy: 0x80, .offline: 0x100, .table: 0x200, .guard: 0x400]))
    #expect(old.has(.buddy, pageType: 0xffff_ff7f))  // PAGE_BUDDY_MAPCOUNT_VALUE = ~0x80
    #expect(!old.has(.buddy, pageType: 0xffff_ffff))  // _mapcount -1: no type
    #expect(old.has(.table, pageType: 0xffff_fdff))
    #expect(!old.has(.slab, pageType: 0xffff_ff7f))  // slab is a page flag on 6.1
    // 6.12: DWARF has enum pagetype; the type is the top byte.
    let new = try Recorded.layout(Recorded.release612).pageTypeEncoding()
    guard case .topByte(let values) = new else {
      Issue.record("6.12 should use the top-byte encoding, got \(new)")
      return
    }
    #expect(values[.buddy] == 0xf0)
    #expect(values[.slab] == 0xf5)
    #expect(new.has(.buddy, pageType: 0xf000_0000))
    #expect(!new.has(.buddy, pageType: 0xf200_0000))
    #expect(new.has(.table, pageType: 0xf200_0000))
  }

  @Test func noPageTypeRuleIsAnError() {
    let layout = KernelLayout(enums: [:])
    #expect(throws: LayoutError.noPageTypeRule(release: nil)) { try layout.pageTypeEncoding() }
    #expect(PageTypeEncoding.ruleEnum(forRelease: "6.1.0-56-cloud-amd64") != nil)
    #expect(PageTypeEncoding.ruleEnum(forRelease: "6.12.117+deb12-cloud-amd64") == nil)
    #expect(PageTypeEncoding.ruleEnum(forRelease: "6.10.0") == nil)
    #expect(PageTypeEncoding.ruleEnum(forRelease: nil) == nil)
  }

  @Test func requestChecksEverything() throws {
    let layout = try Recorded.layout(Recorded.release61)
    #expect(LayoutRequest.default.missing(in: layout).isEmpty)
    var request = LayoutRequest.default
    request.requiredMembers["page"]!.append(["no_such_member", "nor_this"])
    request.symbols.append("no_such_symbol")
    #expect(
      request.missing(in: layout) == [
        "member page.no_such_member|nor_this", "symbol no_such_symbol",
      ])
    #expect(
      LayoutRequest.default.adding(types: ["slab"]).missing(in: layout) == ["type slab"])
  }

  @Test func showLooksLikePahole() throws {
    let layout = try Recorded.layout(Recorded.release61)
    let text = try layout.describe(type: "page")
    #expect(text.hasPrefix("struct page {"))
    #expect(text.contains("struct address_space *mapping;"))
    #expect(text.contains("/* 24 8 */"))
    #expect(text.contains("/* size: 64, members:"))
    let task = try layout.describe(type: "task_struct")
    #expect(task.contains("unsigned int in_execve:1;"))
    #expect(task.contains("/* 2344:2 1 bits */"))
    #expect(task.contains("char comm[16];"))
    let flags = try layout.describe(type: "pageflags")
    #expect(flags.contains("PG_locked = 0,"))
    #expect(throws: LayoutError.missingType("nope")) { try layout.describe(type: "nope") }
  }
}

@Suite struct AddressTests {
  @Test func hexDescriptionsAndConversions() {
    #expect(KernelVirtualAddress(0xffff_ffff_8100_0000).description == "0xffffffff81000000")
    #expect(GuestPhysicalAddress(0x1234_5678).frame() == PageFrameNumber(0x12345))
    #expect(PageFrameNumber(0x12345).address() == GuestPhysicalAddress(0x1234_5000))
    #expect(PageFrameNumber(UInt64.max).address() == nil)
    #expect(KernelVirtualAddress(1) < KernelVirtualAddress(2))
    #expect(KernelVirtualAddress(0xffff_ffff_ffff_ffff).advanced(by: 2) == KernelVirtualAddress(1))
  }
}
