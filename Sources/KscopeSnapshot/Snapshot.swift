import Foundation
import KscopeCore
import KscopeOS

/// A snapshot directory opened for reading: its validated manifest and its files, each opened
/// inside the directory without following a symbolic link (a snapshot may come from another
/// host: `ram` must not be a link to someone else's RAM, `manifest.json` not a link to
/// anything). The files stay open, so what was checked is what is read.
public final class Snapshot: @unchecked Sendable {
  public let directory: ConfinedDirectory
  public let manifest: SnapshotManifest
  public let ram: OpenFile
  public let hints: OpenFile
  public let deviceState: OpenFile

  public var path: String { directory.path }

  init(
    directory: ConfinedDirectory, manifest: SnapshotManifest, ram: OpenFile, hints: OpenFile,
    deviceState: OpenFile
  ) {
    self.directory = directory
    self.manifest = manifest
    self.ram = ram
    self.hints = hints
    self.deviceState = deviceState
  }

  /// Opens and checks DIR: manifest.json (a regular file, not a link, at most 1 MiB, valid),
  /// then the RAM, hint and device-state files it names, with the sizes it gives.
  public static func open(_ path: String) throws -> Snapshot {
    let dir: ConfinedDirectory
    do throws(FileError) { dir = try ConfinedDirectory(path: path) } catch {
      throw SnapshotError.badSnapshot(error.description)
    }
    let manifestFile: OpenFile
    do throws(FileError) { manifestFile = try dir.openFile("manifest.json") } catch {
      if error.errno == ENOENT {
        throw SnapshotError.badSnapshot(
          "\(TerminalSafe.oneLine(path))/manifest.json is missing or unreadable")
      }
      throw SnapshotError.badSnapshot(error.description)
    }
    // Read in one buffer of the file's size (no read chunk beside it) and decoded from it
    // (ManifestReader): no copy, no JSON tree beside the fields.
    let size = manifestFile.size
    guard size <= UInt64(SnapshotManifest.maxManifestBytes) else {
      throw SnapshotError.badSnapshot(
        "\(manifestFile.path) has \(size) bytes (at most \(SnapshotManifest.maxManifestBytes))")
    }
    let data: [UInt8]
    do throws(FileError) { data = try manifestFile.read(at: 0, count: Int(size)) } catch {
      throw SnapshotError.badSnapshot(error.description)
    }
    guard data.count == Int(size) else {
      throw SnapshotError.badSnapshot("\(manifestFile.path) changed size while it was read")
    }
    let m = try SnapshotManifest.decode(bytes: data)
    func file(_ name: String, size: UInt64?, max: UInt64) throws -> OpenFile {
      let f: OpenFile
      do throws(FileError) { f = try dir.openFile(name) } catch {
        if error.errno == ENOENT {
          throw SnapshotError.badSnapshot("\(TerminalSafe.oneLine(path))/\(name) is missing")
        }
        throw SnapshotError.badSnapshot(error.description)
      }
      let actual = f.size
      if let size, actual != size {
        throw SnapshotError.badSnapshot("\(f.path) has \(actual) bytes, manifest says \(size)")
      }
      if actual == 0 { throw SnapshotError.badSnapshot("\(f.path) is empty") }
      if actual > max {
        throw SnapshotError.badSnapshot("\(f.path) has \(actual) bytes (at most \(max))")
      }
      return f
    }
    let ram = try file(m.ram, size: m.ramSize, max: m.ramSize)
    let hints = try file(m.hints, size: m.hintSize, max: m.hintSize)
    let state = try file(m.deviceState, size: nil, max: SnapshotManifest.maxDeviceStateBytes)
    return Snapshot(directory: dir, manifest: m, ram: ram, hints: hints, deviceState: state)
  }

  /// The guest RAM, mapped read-only from the file this snapshot opened, with the manifest's
  /// regions.
  public func mapRAM() throws -> RAMImage {
    let file: MappedFile
    do throws(FileError) { file = try ram.map() } catch {
      throw SnapshotError.badSnapshot(error.description)
    }
    return try RAMImage(file: file, regions: manifest.memoryLayout)
  }

  /// The hint region's bytes, as the snapshot holds them (the guest no longer writes them; the
  /// hint reader still checks everything in them).
  public func hintRegionBytes() throws(FileError) -> [UInt8] {
    try hints.readAll(limit: HintFormat.maxRegionSize)
  }

  /// Refuses a snapshot this host cannot run or read: more RAM than the host has.
  public func checkFitsHost(memory: UInt64 = ProcessInfo.processInfo.physicalMemory) throws {
    guard manifest.ramSize <= memory else {
      throw SnapshotError.badSnapshot(
        "\(path): \(manifest.ramSize >> 20) MiB of guest RAM, more than this host's \(memory >> 20) MiB"
      )
    }
  }
}

/// Whether a hint region can describe a guest. The agent's frame table covers the guest's own
/// frames (its kpageflags length: up to the top of RAM, less what firmware reserves there), so
/// a table for another machine (6,553,600 frames against 131,072) is refused even when it names
/// the same kernel build; a snapshot's region must also have the size its manifest gives.
public enum HintFit {
  public static func mismatch(_ hints: HintSet, guestEnd: UInt64, regionSize: UInt64?) -> String? {
    if let regionSize, hints.regionSize != regionSize {
      return "a \(hints.regionSize)-byte region, the snapshot's is \(regionSize)"
    }
    guard let frames = hints.frames, hints.pageSize > 0 else { return nil }
    let guestFrames = guestEnd / UInt64(hints.pageSize)
    guard frames.totalFrames <= guestFrames, frames.totalFrames >= guestFrames - guestFrames / 16
    else {
      return "the frame table is for \(frames.totalFrames) frames, the guest has \(guestFrames)"
    }
    return nil
  }
}
