// Errors of the vmlinux reader. Each names the file and what is missing or wrong, in one line;
// libelf and libdw errors are converted here, at the boundary, with their own message.

public enum DebugInfoError: Error, Equatable, CustomStringConvertible {
  case cannotOpen(path: String, reason: String)
  case notELF(path: String)
  case truncated(path: String, detail: String)
  case wrongClass(path: String, detail: String)
  case wrongArchitecture(path: String, machine: String)
  case notAnExecutable(path: String, type: String)
  case noDebugInfo(path: String)
  case noSymbolTable(path: String)
  case libelf(path: String, operation: String, message: String)
  case libdw(path: String, operation: String, message: String)
  case badDWARF(path: String, detail: String)
  /// Things the request needs that the file does not have ("type slab", "member page.x").
  case incomplete(path: String, missing: [String])
  case cannotWrite(path: String, reason: String)
  /// A layout or ISF file that cannot be used (bad JSON, missing fields, incomplete).
  case invalidLayout(path: String, reason: String)

  public var description: String {
    switch self {
    case .cannotOpen(let path, let reason): return "\(path): cannot open: \(reason)"
    case .notELF(let path): return "\(path): not an ELF file (expected a vmlinux with DWARF)"
    case .truncated(let path, let detail): return "\(path): truncated ELF file: \(detail)"
    case .wrongClass(let path, let detail):
      return "\(path): \(detail); kscope reads 64-bit little-endian x86_64 kernels"
    case .wrongArchitecture(let path, let machine):
      return "\(path): ELF for \(machine), not x86_64; kscope reads x86_64 kernels"
    case .notAnExecutable(let path, let type):
      return "\(path): ELF type \(type), not a linked vmlinux (EXEC or DYN)"
    case .noDebugInfo(let path):
      return
        "\(path): no DWARF (.debug_info missing: a stripped file or a bzImage? use the vmlinux from the -dbg package)"
    case .noSymbolTable(let path): return "\(path): no symbol table (.symtab missing)"
    case .libelf(let path, let operation, let message):
      return "\(path): libelf \(operation): \(message)"
    case .libdw(let path, let operation, let message):
      return "\(path): libdw \(operation): \(message)"
    case .badDWARF(let path, let detail): return "\(path): unexpected DWARF: \(detail)"
    case .incomplete(let path, let missing):
      return "\(path): missing \(missing.joined(separator: ", ")); no layout written"
    case .cannotWrite(let path, let reason): return "\(path): cannot write: \(reason)"
    case .invalidLayout(let path, let reason): return "\(path): \(reason)"
    }
  }
}
