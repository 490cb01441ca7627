import ArgumentParser
import KscopeDebugInfo
import KscopeKernelImage
import KscopeLayout
import KscopeOS

struct LayoutExtractCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "extract",
    abstract: "Extract a kernel layout from a vmlinux (DWARF), a vmlinuz (BTF + kallsyms) or raw BTF.",
    discussion: """
      A vmlinux with DWARF (from the -dbg package) is read through its symbols and DWARF. A \
      vmlinuz, or a vmlinux without DWARF, is read from the kernel's own BTF (.BTF) with \
      symbols from its kallsyms tables and the build id from .notes. Raw BTF \
      (/sys/kernel/btf/vmlinux) has no symbols: it needs --types-only.

      Without -o the layout (ISF JSON) goes to standard output; with -o it is written \
      atomically and a summary is printed. Nothing is written unless every required type, \
      member, enum and symbol was found.
      """)

  @Argument(help: "The guest kernel: a vmlinux (with or without DWARF), a vmlinuz, or raw BTF.")
  var vmlinux: String

  @Option(name: .shortAndLong, help: "Write the layout to this file.")
  var output: String?

  @Option(help: "More structs, unions or enums to record, comma-separated.")
  var types: String?

  @Flag(help: "Raw BTF only: write a layout of types without symbols.")
  var typesOnly = false

  @OptionGroup var outputOptions: OutputOptions

  func run() throws {
    let request = LayoutRequest.default.adding(types: parseTypeList(types))
    let layout: KernelLayout
    if try Self.hasDWARF(vmlinux) {
      layout = try layoutCall { () throws(DebugInfoError) in
        try LayoutExtractor.extract(vmlinux: vmlinux, request: request)
      }
    } else {
      do {
        layout = try KernelImageFile.layout(path: vmlinux, request: request, typesOnly: typesOnly)
      } catch {
        throw CommandFailure(error.description)
      }
    }
    try emitLayout(layout, output: output, json: outputOptions.json, typesOnly: typesOnly)
  }

  /// An ELF file with a .debug_info section goes the DWARF way; anything else the BTF way.
  static func hasDWARF(_ path: String) throws -> Bool {
    let file: MappedFile
    do { file = try MappedFile(path: path) } catch { throw CommandFailure(error.description) }
    guard let all = file.bytes(at: 0, count: file.size), KernelImageFile.kind(of: all) == .elf else { return false }
    guard let elf = try? ElfSections(all) else { return false }
    return elf.section(".debug_info") != nil
  }
}
