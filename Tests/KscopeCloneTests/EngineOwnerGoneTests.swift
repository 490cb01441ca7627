import Foundation
import Glibc
import KscopeCore
import KscopeOS
import Testing

@testable import KscopeClone
@testable import KscopeEngine

/// A clone process that dies while the engine still holds one of its faults: the engine's answer
/// meets ESRCH (its address space is gone), drops that clone without an error and without
/// killing anyone, and goes on serving the others. The dying clone is a real separate process
/// (a small C program, built here with gcc), since only another process's address space can go
/// away under the engine.
@Suite(.serialized) struct EngineOwnerGoneTests {
  /// The clone: maps the cache file privately, registers it with userfaultfd, hands the uffd over
  /// (kscope_handoff.h), then in four threads, 50 ms apart: touches data frame Z, touches hole
  /// frame B, gives pages back (a REMOVE event, which makes the kernel refuse zero fills until it
  /// is read), touches data frame A. Says "ready" once the hand-off is acknowledged, then waits
  /// to be killed.
  static let source = #"""
    #define _GNU_SOURCE
    #include "kscope_handoff.h"
    #include <fcntl.h>
    #include <pthread.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/ioctl.h>
    #include <sys/mman.h>
    #include <sys/socket.h>
    #include <sys/syscall.h>
    #include <sys/un.h>
    #include <unistd.h>

    static char *base;
    static long z, b, rstart, rcount, a;
    static void *touch(void *frame) { return (void *)(long)*(volatile char *)(base + (long)frame * 4096); }
    static void *give_back(void *unused) {
      (void)unused;
      madvise(base + rstart * 4096, (size_t)rcount * 4096, MADV_DONTNEED);
      return NULL;
    }
    static void die(const char *what) { perror(what); exit(2); }

    int main(int argc, char **argv) {
      if (argc != 9) return 2;
      size_t size = strtoul(argv[2], 0, 10);
      z = atol(argv[4]); b = atol(argv[5]); rstart = atol(argv[6]); rcount = atol(argv[7]); a = atol(argv[8]);
      int fd = open(argv[1], O_RDONLY);
      if (fd < 0) die("open");
      base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (base == MAP_FAILED) die("mmap");
      int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
      if (uffd < 0) die("userfaultfd");
      struct uffdio_api api = {.api = UFFD_API, .features = KSCOPE_UFFD_FEATURES};
      if (ioctl(uffd, UFFDIO_API, &api) < 0) die("UFFDIO_API");
      struct uffdio_register reg = {.range = {.start = (unsigned long)base, .len = size}, .mode = UFFDIO_REGISTER_MODE_MISSING};
      if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) die("UFFDIO_REGISTER");
      int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct sockaddr_un addr = {.sun_family = AF_UNIX};
      strncpy(addr.sun_path, argv[3], sizeof addr.sun_path - 1);
      if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
      struct {
        struct kscope_handoff_header h;
        struct kscope_handoff_region r;
      } __attribute__((packed)) m = {
          {KSCOPE_HANDOFF_MAGIC, KSCOPE_HANDOFF_VERSION, 1, (uint32_t)getpid()}, {(uint64_t)(unsigned long)base, size, 0}};
      char control[CMSG_SPACE(sizeof(int))] = {0};
      struct iovec iov = {&m, sizeof m};
      struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &uffd, sizeof(int));
      if (sendmsg(s, &msg, 0) != (ssize_t)sizeof m) die("sendmsg");
      close(uffd);
      char ack = 0;
      if (read(s, &ack, 1) != 1 || ack != KSCOPE_HANDOFF_ACK) die("hand-off not acknowledged");
      printf("ready\n");
      fflush(stdout);
      pthread_t t;
      pthread_create(&t, NULL, touch, (void *)z);
      usleep(50000);
      pthread_create(&t, NULL, touch, (void *)b);
      usleep(50000);
      pthread_create(&t, NULL, give_back, NULL);
      usleep(50000);
      pthread_create(&t, NULL, touch, (void *)a);
      for (;;) pause();
    }
    """#

  /// Builds the dying clone into `dir` (gcc, which host/setup.sh installs).
  static func build(_ dir: String) throws -> String {
    let include = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../Sources/CKscopeLinux/include").standardized.path
    let c = dir + "/dying-clone.c"
    let out = dir + "/dying-clone"
    try Data(source.utf8).write(to: URL(fileURLWithPath: c))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/gcc")
    p.arguments = ["-O1", "-pthread", "-I", include, "-o", out, c]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw EngineError("building the dying clone failed") }
    return out
  }

  @Test func aCloneThatDiesWithAFaultInTheEnginesHandsIsDroppedAndOthersAreServed() throws {
    // Each NBD read takes 300 ms (nbdkit's delay filter). The timeline, in the engine's one
    // handler thread for the dying clone:
    //   0 ms    reads Z's fault, fetches it (until 300 ms)
    //   300 ms  reads B's fault: its zero page is refused (EAGAIN, the REMOVE is pending), so it
    //           is held to answer again; reads A's fault, fetches it (until 600 ms)
    //   450 ms  the test kills the clone: its address space goes away
    //   600 ms  wakes A, then answers B again: ESRCH
    let f = try EngineTests.Fixture()
    let server = try NBDServer(file: f.ram, delayMilliseconds: 300)
    let r = try EngineEventTests.Run(f, source: try NBDSource(uri: server.uri))
    let program = try Self.build(f.dir)
    let clone = Process()
    clone.executableURL = URL(fileURLWithPath: program)
    clone.arguments = [
      r.cache.path, String(r.f.layout.fileSize), r.socket, "3000", "2049", "6000", "16", "3100",
    ]
    let out = Pipe()
    clone.standardOutput = out
    try clone.run()
    let ready = out.fileHandleForReading.availableData
    #expect(String(decoding: ready, as: UTF8.self) == "ready\n", "the dying clone did not start")
    usleep(450_000)
    kill(clone.processIdentifier, SIGKILL)
    clone.waitUntilExit()
    // Another clone, connected after the death, is still served (each miss takes 300 ms).
    let other = try r.client()
    #expect(r.matches(other.page(frame: 1500)!, 1500))
    #expect(r.matches(other.page(frame: 2050)!, 2050))
    // The dead clone's handler ended on its own, before anyone stopped the engine.
    var records = r.engine.clientRecords()
    for _ in 0..<100 where records.first?.connected == true {
      usleep(50_000)
      records = r.engine.clientRecords()
    }
    #expect(records.first?.connected == false, "the dead clone's handler never ended")
    other.hangUp()
    records = r.engine.stop()
    #expect(r.engine.errors.isEmpty, "\(r.engine.errors)")
    let dead = try #require(records.first)
    #expect(dead.pid == UInt32(clone.processIdentifier))
    #expect(dead.deferredFills >= 1, "the zero page was never refused: the test proved nothing")
    #expect(dead.ownerGone, "the engine never met ESRCH: the test proved nothing")
    #expect(dead.faultCount == 2)
    let alive = try #require(records.last)
    #expect(records.count == 2)
    #expect(alive.faultCount == 1 && alive.zeroFilled == 1)
  }
}
