import Foundation
import KscopeColoring
import KscopeCore
import KscopeSnapshot
import KscopeTestSupport
import Testing

/// The library entry point on inputs that need no guest: what it opens, what it refuses, and
/// how it treats the hint region (whole guests: GuestColoringTests).
@Suite struct ColoringTests {
  @Test func aSnapshotOpensWithItsManifestsRegions() throws {
    let dir = try SampleSnapshot.makeDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let input = try ColoringInput.open(dir)
    #expect(input.regions == SampleSnapshot.manifest().memoryLayout)
    #expect(input.kernel == SampleSnapshot.manifest().kernel)
    #expect(input.ramPath == dir + "/ram")
  }

  @Test func rawFilesAreSplitAroundThePCIHoleUnlessFlat() throws {
    let dir = try SampleSnapshot.makeDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try SampleSnapshot.createSparseFile(dir + "/big", size: 3 << 30)
    #expect(try ColoringInput.open(dir + "/big").regions == GuestRAMRegion.q35Layout(ramSize: 3 << 30))
    #expect(
      try ColoringInput.open(dir + "/big", flat: true).regions == [
        GuestRAMRegion(guestPhysicalStart: 0, size: 3 << 30, fileOffset: 0)
      ])
    // A raw file names no kernel: the layout must be given.
    #expect {
      try Coloring.color(try ColoringInput.open(dir + "/big"), layoutProvider: KernelLayouts())
    } throws: {
      "\($0)".contains("needs the guest kernel's layout")
    }
  }

  @Test func aGuestWithoutAKernelIsOneLineNamingTheRAMFile() throws {
    let dir = try SampleSnapshot.makeDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let layout = try ValidatedLayout(try recordedLayout("6.12"), origin: "recorded 6.12")
    do {
      _ = try Coloring.color(try ColoringInput.open(dir), layout: layout)
      Issue.record("an all-zero RAM file was colored")
    } catch {
      let text = "\(error)"
      #expect(text.hasPrefix(dir + "/ram: no valid vmcoreinfo"), "\(text)")
      #expect(!text.contains("\n"))
    }
  }

  @Test func hintsAreSetAsideWithTheirReason() throws {
    let dir = try SampleSnapshot.makeDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let input = try ColoringInput.open(dir)
    // The sample's hint region is all zero: the guest published nothing.
    #expect(Coloring.readHints(input, .fromSnapshot).1 == "no hints (the guest published none)")
    #expect(Coloring.readHints(input, .ignored).1 == nil)
    try Data("not a region".utf8).write(to: URL(fileURLWithPath: dir + "/other"))
    let (set, note) = Coloring.readHints(input, .file(dir + "/other"))
    #expect(set == nil)
    #expect(note?.hasPrefix("hints rejected (\(dir)/other: ") == true, "\(note ?? "")")
  }
}
