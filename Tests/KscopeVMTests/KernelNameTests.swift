import KscopeVM
import Testing

/// `--kernel` names: a series (the pinned release), "<series>-latest", or an exact release.
@Suite struct KernelNameTests {
  @Test func seriesOfEachForm() {
    #expect(GuestKernel.series(of: "6.1") == "6.1")
    #expect(GuestKernel.series(of: "6.12") == "6.12")
    #expect(GuestKernel.series(of: "6.1-latest") == "6.1")
    #expect(GuestKernel.series(of: "6.12-latest") == "6.12")
    #expect(GuestKernel.series(of: "6.1.0-57-cloud-amd64") == "6.1")
    #expect(GuestKernel.series(of: "6.12.117+deb12-cloud-amd64") == "6.12")
  }

  @Test(arguments: [
    "", "6", "6.2", "5.10.0-1-cloud-amd64", "6.1.0-57-amd64", "../6.1.0-57-cloud-amd64",
    "6.1.0-57/../x-cloud-amd64", "6.1.0 57-cloud-amd64", "6.1-latest-latest",
  ])
  func rejects(name: String) {
    #expect(GuestKernel.series(of: name) == nil)
    #expect(throws: VMError.self) { try GuestKernel.resolve(series: name) }
  }
}
