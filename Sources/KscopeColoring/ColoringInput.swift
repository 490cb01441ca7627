import Foundation
import KscopeCore
import KscopeOS
import KscopeSnapshot

/// A one-line reason why a guest cannot be colored (its description is what the user sees).
public struct ColoringError: Error, CustomStringConvertible, Sendable {
  public let description: String
  public init(_ description: String) { self.description = TerminalSafe.oneLine(description) }
}

/// What `kscope color SNAPSHOT_OR_RAM` colors: a snapshot directory (its validated manifest,
/// its files opened inside it) or a raw guest RAM file, mapped, with its guest-physical layout.
public struct ColoringInput: Sendable {
  /// The opened snapshot; nil for a raw RAM file.
  public let snapshot: Snapshot?
  /// The guest RAM, mapped read-only.
  public let memory: RAMImage
  /// The RAM file's name, for messages and the map's `source.ram`.
  public let ramPath: String

  public var regions: [GuestRAMRegion] { memory.regions }
  /// The kernel the snapshot's manifest names (nil for a raw file).
  public var kernel: SnapshotManifest.Kernel? { snapshot?.manifest.kernel }

  /// Opens `path`: a directory is a snapshot (`Snapshot.open`: everything in it is untrusted,
  /// and it must fit this host's memory); a file is raw guest RAM, split around q35's PCI hole
  /// unless `flat` (guest physical memory from 0).
  public static func open(_ path: String, flat: Bool = false) throws -> ColoringInput {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw ColoringError("\(path): no such file or snapshot directory")
    }
    if isDir.boolValue {
      do {
        let snap = try Snapshot.open(path)
        try snap.checkFitsHost()
        return ColoringInput(snapshot: snap, memory: try snap.mapRAM(), ramPath: snap.ram.path)
      } catch {
        throw ColoringError("\(path): not a usable snapshot: \(error)")
      }
    }
    do {
      let file = try OpenFile.open(path).map()
      let size = UInt64(file.size)
      let regions =
        flat
        ? [GuestRAMRegion(guestPhysicalStart: 0, size: size, fileOffset: 0)]
        : GuestRAMRegion.q35Layout(ramSize: size)
      return ColoringInput(snapshot: nil, memory: try RAMImage(file: file, regions: regions), ramPath: path)
    } catch {
      throw ColoringError("\(path): \(error)")
    }
  }
}
