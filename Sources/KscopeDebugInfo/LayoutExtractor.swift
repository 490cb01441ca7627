import KscopeCore
import KscopeLayout

/// Reads a guest vmlinux (ELF + DWARF) into a kernel layout.
public enum LayoutExtractor {
  /// What one extraction did, for reports and the benchmark.
  public struct Statistics: Sendable {
    public var compilationUnitsScanned: Int
  }

  /// Extracts the layout `request` asks for. Either every required type, member, enum and
  /// symbol is there, or it throws naming what is missing: never a partial layout.
  public static func extract(vmlinux path: String, request: LayoutRequest = .default)
    throws(DebugInfoError) -> KernelLayout
  {
    try extractWithStatistics(vmlinux: path, request: request).layout
  }

  public static func extractWithStatistics(vmlinux path: String, request: LayoutRequest = .default)
    throws(DebugInfoError) -> (layout: KernelLayout, statistics: Statistics)
  {
    let elf = try ElfFile(path: path)
    guard elf.section(named: ".debug_info") != nil else { throw .noDebugInfo(path: path) }

    // The banner is always looked up: the release it names decides the page_type rule.
    let found = try elf.symbolAddresses(
      request.symbols + request.optionalSymbols + [LayoutSymbolName.banner])
    var symbols: [String: Symbol] = [:]
    for (name, entry) in found {
      symbols[name] = Symbol(address: KernelVirtualAddress(entry.address))
    }
    // The banner is a string in .rodata; Volatility keeps its bytes as constant_data.
    if let banner = found[LayoutSymbolName.banner] {
      let size = banner.size
      if var bytes = try elf.bytes(at: banner.address, count: size > 0 ? Int(size) : 512) {
        if size == 0, let end = bytes.firstIndex(of: 0) { bytes = Array(bytes[...end]) }
        symbols[LayoutSymbolName.banner]?.constantData = bytes
      }
    }
    if let id = try elf.buildID() {
      symbols[LayoutSymbolName.buildID] = Symbol(
        address: KernelVirtualAddress(id.address), constantData: id.bytes)
    }
    var partial = KernelLayout(symbols: symbols)
    let release = partial.release

    var collector = try TypeCollector(
      elf: elf, wanted: request.types + request.enumsToFind(release: release))
    try collector.scan()
    let name = path.split(separator: "/").last.map(String.init) ?? path
    partial.sources = [LayoutSource(kind: "dwarf", name: name)]
    partial.baseTypes = collector.baseTypes
    partial.userTypes = collector.userTypes
    partial.enums = collector.enums
    do {
      // The collector recorded only wanted types and the anonymous ones they use.
      let recorded = Set(collector.userTypes.keys).union(collector.enums.keys)
      let layout = try partial.restricted(to: request, keepReferenced: { recorded.contains($0) })
      return (layout, Statistics(compilationUnitsScanned: collector.unitsScanned))
    } catch {
      if case .incomplete(let missing) = error { throw .incomplete(path: path, missing: missing) }
      throw .badDWARF(path: path, detail: error.description)
    }
  }
}
