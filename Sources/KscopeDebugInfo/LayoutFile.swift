import KscopeLayout

/// Layout files on disk: ours and other tools' ISF.
public enum LayoutFile {
  /// Reads a layout file (ISF JSON), as it is: no request is checked.
  public static func read(_ path: String) throws(DebugInfoError) -> KernelLayout {
    let bytes = try AtomicFile.read(path)
    do {
      return try KernelLayout(isfBytes: bytes)
    } catch {
      throw .invalidLayout(path: path, reason: error.description)
    }
  }

  /// Reads an ISF produced by another tool (dwarf2json) and keeps what `request` asks for;
  /// throws naming everything missing, so an incomplete import is never written.
  public static func importISF(_ path: String, request: LayoutRequest = .default)
    throws(DebugInfoError)
    -> KernelLayout
  {
    let layout = try read(path)
    do {
      // Our own files name anonymous types after their typedef (atomic_t) and are already
      // restricted: keep what they reference. Other producers' anonymous types are unnamed_*.
      let ours = layout.producer.name == KernelLayout.producerName
      var result = try layout.restricted(
        to: request,
        keepReferenced: {
          ours ? (layout.userTypes[$0] != nil || layout.enums[$0] != nil) : $0.hasPrefix("unnamed_")
        })
      // The result is ours now; where it came from stays in the sources.
      result.producer = (KernelLayout.producerName, KernelLayout.producerVersion)
      if result.sources.isEmpty {
        result.sources = [
          LayoutSource(
            kind: "dwarf", name: path.split(separator: "/").last.map(String.init) ?? path)
        ]
      }
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
