// What a layout must contain: the structures, members, enums and symbols the memory walkers
// use. `extract` and `import` both check a layout against a request, so a layout that is
// written is complete, never partial.
//
// To support a new kernel version:
// 1. Extract its layout (`kscope layout extract`); a missing member names itself.
// 2. If a member was renamed, add the new spelling to its alternatives below (newest first)
//    and make the walkers use `offset(of:member:)` with the same alternatives.
// 3. If the page_type encoding changed and DWARF has no `enum pagetype`, add a rule in
//    PageTypeEncoding.swift from that version's include/linux/page-flags.h.
// 4. Record the layout under Tests/KscopeLayoutTests/Recorded/ (see the README there).

public struct LayoutRequest: Sendable, Equatable {
  /// Structs and unions (or enums) to record, by name without `struct `.
  public var types: [String]
  /// Enums that must be present.
  public var enums: [String]
  /// Members each type must have; each entry lists the accepted spellings, newest first.
  public var requiredMembers: [String: [[String]]]
  /// Symbols that must be in `.symtab`.
  public var symbols: [String]
  /// Symbols recorded when present (they depend on the kernel configuration).
  public var optionalSymbols: [String]

  public init(
    types: [String], enums: [String], requiredMembers: [String: [[String]]], symbols: [String],
    optionalSymbols: [String]
  ) {
    self.types = types
    self.enums = enums
    self.requiredMembers = requiredMembers
    self.symbols = symbols
    self.optionalSymbols = optionalSymbols
  }

  /// The request with more types (from `--types a,b`), without duplicates.
  public func adding(types more: [String]) -> LayoutRequest {
    var copy = self
    for name in more where !copy.types.contains(name) && !copy.enums.contains(name) {
      copy.types.append(name)
    }
    return copy
  }

  /// What the walkers of the analyzer need.
  public static let `default` = LayoutRequest(
    types: [
      "page", "folio", "address_space", "inode", "super_block", "file", "list_head",
      "hlist_node", "mm_struct", "task_struct", "vm_area_struct", "maple_tree", "zone",
      "free_area", "pglist_data", "mem_section", "xarray", "xa_node",
    ],
    enums: ["pageflags", "zone_type", "migratetype"],
    requiredMembers: [
      "page": [
        ["flags"], ["_refcount", "_count"], ["_mapcount"], ["mapping"], ["index"], ["lru"],
        ["compound_head"], ["private"],
      ],
      "folio": [["flags"], ["mapping"], ["index"]],
      "address_space": [["host"], ["i_pages"], ["nrpages"]],
      "inode": [["i_ino"], ["i_sb"], ["i_mapping"], ["i_data"], ["i_size"], ["i_sb_list"]],
      "super_block": [["s_list"], ["s_dev"], ["s_inodes"], ["s_id"]],
      "file": [["f_mapping"], ["f_inode"]],
      "list_head": [["next"], ["prev"]],
      "hlist_node": [["next"], ["pprev"]],
      // 6.1 moved VMAs from a list (mmap) to a maple tree (mm_mt).
      "mm_struct": [["pgd"], ["mm_mt", "mmap"]],
      "task_struct": [["tasks"], ["mm"], ["pid"], ["comm"]],
      "vm_area_struct": [["vm_start"], ["vm_end"], ["vm_flags"], ["vm_file"], ["vm_pgoff"]],
      "maple_tree": [["ma_root"], ["ma_flags"]],
      "zone": [
        ["free_area"], ["zone_start_pfn"], ["spanned_pages"], ["present_pages"], ["name"],
      ],
      "free_area": [["free_list"], ["nr_free"]],
      "pglist_data": [
        ["node_zones"], ["node_start_pfn"], ["node_spanned_pages"], ["node_present_pages"],
        ["node_id"],
      ],
      "mem_section": [["section_mem_map"]],
      "xarray": [["xa_head"]],
      "xa_node": [["shift"], ["offset"], ["count"], ["slots"], ["parent"]],
    ],
    symbols: [
      "_text", "_etext", "__start_rodata", "__end_rodata", "_sdata", "_edata", "__bss_start",
      "__bss_stop", "init_top_pgt", "init_task", "page_offset_base", "vmemmap_base",
      "phys_base", "mem_section", "node_data", "vmcoreinfo_note", "init_mm", "super_blocks",
      "linux_banner",
    ],
    optionalSymbols: [
      "_stext", "_end", "__init_begin", "__init_end", "_sinittext", "_einittext",
      "vmalloc_base", "vmcoreinfo_data", "vmcoreinfo_size", "init_uts_ns", "init_pid_ns",
      "max_pfn", "high_memory", "__pgtable_l5_enabled", "pgdir_shift", "ptrs_per_p4d",
      "__per_cpu_offset", "sb_lock", "node_states", "empty_zero_page",
    ])

  /// The enums to look for in a kernel of `release`: ours plus `pagetype` unless a kscope
  /// rule gives the page_type encoding of that release (6.1 has it only as macros).
  public func enumsToFind(release: String?) -> [String] {
    if PageTypeEncoding.ruleEnum(forRelease: release) != nil { return enums }
    return enums.contains(PageTypeEncoding.dwarfEnumName)
      ? enums : enums + [PageTypeEncoding.dwarfEnumName]
  }

  /// Everything `layout` lacks for this request, as "struct page", "member page._refcount|_count",
  /// "enum pageflags", "symbol init_task". Empty when the layout is complete.
  public func missing(in layout: KernelLayout) -> [String] {
    var missing: [String] = []
    for name in types where layout.userTypes[name] == nil && layout.enums[name] == nil {
      missing.append("type \(name)")
    }
    for (type, members) in requiredMembers.sorted(by: { $0.key < $1.key }) {
      guard types.contains(type), let userType = layout.userTypes[type] else { continue }
      for alternatives in members
      where !alternatives.contains(where: { userType.member(named: $0) != nil }) {
        missing.append("member \(type).\(alternatives.joined(separator: "|"))")
      }
    }
    for name in enumsToFind(release: layout.release) where layout.enums[name] == nil {
      missing.append("enum \(name)")
    }
    for name in symbols where layout.symbols[name] == nil {
      missing.append("symbol \(name)")
    }
    return missing
  }
}
