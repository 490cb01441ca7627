import KscopeCore
import KscopeLayout
import KscopeOS

/// Layout files on disk: ours and other tools' ISF.
public enum LayoutFile {
  /// Reads a layout file (ISF JSON), as it is: no request is checked.
  /// kscope's own layouts are ~80 KB; an ISF of a whole kernel (dwarf2json) tens of MB.
  public static let maxLayoutBytes = 8 << 20
  public static let maxImportBytes = 64 << 20

  /// Reads a layout file (ISF JSON) and checks its structure (sizes bounded, members inside
  /// their types); whether it has what the walkers need is `KernelLayout.validate(request:)`.
  public static func read(_ path: String, limit: Int = maxLayoutBytes) throws(DebugInfoError)
    -> KernelLayout
  {
    let bytes: [UInt8]
    do { bytes = try Files.readBounded(path, limit: limit) } catch {
      throw .cannotOpen(path: TerminalSafe.oneLine(path), reason: error.reason)
    }
    do {
      let layout = try KernelLayout(isfBytes: bytes)
      try layout.validateStructure()
      return layout
    } catch {
      throw .invalidLayout(path: path, reason: error.description)
    }
  }

  /// Writes a layout's text with KscopeOS's one atomic write, the error as DebugInfoError.
  public static func write(_ text: String, to path: String) throws(DebugInfoError) {
    do { try Files.writeAtomically(text, to: path) } catch {
      throw .cannotWrite(path: TerminalSafe.oneLine(path), reason: error.reason)
    }
  }

  /// Reads an ISF produced by another tool (dwarf2json) and keeps what `request` asks for;
  /// throws naming everything missing, so an incomplete import is never written.
  public static func importISF(_ path: String, request: LayoutRequest = .default)
    throws(DebugInfoError)
    -> KernelLayout
  {
    let bytes: [UInt8]
    do { bytes = try Files.readBounded(path, limit: maxImportBytes) } catch {
      throw .cannotOpen(path: TerminalSafe.oneLine(path), reason: error.reason)
    }
    do {
      // Only what the request reaches is decoded (memory within 2x the file). Our own files
      // name anonymous types after their typedef (atomic_t) and are already restricted: what
      // they reference is kept. Other producers' anonymous types are unnamed_*.
      var result = try KernelLayout.importing(isfBytes: bytes, request: request)
      // The result is ours now; where it came from stays in the sources.
      result.producer = (KernelLayout.producerName, KernelLayout.producerVersion)
      if result.sources.isEmpty {
        result.sources = [
          LayoutSource(
            kind: "dwarf", name: path.split(separator: "/").last.map(String.init) ?? path)
        ]
      }
      // The one validator every layout passes before it is written or used.
      try result.validate(request: request)
      return result
    } catch {
      if case .incomplete(let missing) = error {
        throw .invalidLayout(
          path: path, reason: "missing \(missing.joined(separator: ", ")); no layout written")
      }
      throw .invalidLayout(path: path, reason: error.description)
    }
  }
}
