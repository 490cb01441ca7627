import Testing

@testable import KscopeVM

/// The smaps reader behind `vm stats`' host memory: sums only the named file's mappings.
@Suite struct MemoryUsageTests {
  let smaps = """
    7f77bbfff000-7f77bc100000 rw-p 00000000 00:1b 82818                      /dev/shm/e/cache.ram
    Size:               1028 kB
    Rss:                   8 kB
    Pss:                   6 kB
    Shared_Clean:          4 kB
    Shared_Dirty:          0 kB
    Private_Clean:         0 kB
    Private_Dirty:         4 kB
    Anonymous:             4 kB
    AnonHugePages:         0 kB
    VmFlags: rd wr mr mw me ac sd
    7f77bc100000-7f77bcfff000 rw-p 00101000 00:1b 99999                      /dev/shm/other
    Rss:                 100 kB
    Pss:                 100 kB
    Private_Dirty:       100 kB
    7f77bcfff000-7f77bdd4b000 rw-p 01000000 00:1b 82818                      /dev/shm/e/cache.ram
    Rss:                1348 kB
    Pss:                1348 kB
    Private_Dirty:      1348 kB
    7ffd00000000-7ffd00001000 r--p 00000000 00:00 0
    Rss:                   4 kB
    """

  @Test func sumsTheNamedFilesMappingsOnly() {
    let u = MappingUsage.parse(smaps: Substring(smaps), path: "/dev/shm/e/cache.ram")
    #expect(u.mappings == 2)
    #expect(u.rssKiB == 1356)
    #expect(u.pssKiB == 1354)
    #expect(u.privateKiB == 1352)
    #expect(u.sharedKiB == 4)
    #expect(u.anonymousKiB == 4)
  }

  @Test func garbageCountsNothing() {
    let u = MappingUsage.parse(smaps: "not smaps\n-\n::::\nRss: 5 kB\n", path: "/x")
    #expect(u == MappingUsage())
  }
}
