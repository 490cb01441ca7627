/* kscope-shim: LD_PRELOAD'ed into a lazy clone's QEMU. It watches QEMU map the guest RAM file
 * (the host cache file), registers exactly that mapping with userfaultfd (MISSING faults, not
 * user-mode-only, so the kernel's own accesses to guest RAM reach the engine too), leaves the
 * large free runs listed by kscope unregistered, and hands the uffd and the region to kscope's
 * clone engine over a unix socket (SCM_RIGHTS, the ABI of kscope_handoff.h). It waits for the
 * engine's acknowledgement before QEMU goes on: nothing may read guest RAM before the engine
 * serves it. Any failure ends QEMU: a clone must never run on pages it never got.
 *
 * It also keeps discards off that file. QEMU 7.2 answers a guest's free page reports
 * (virtio-balloon free-page-reporting, which clones of such a parent carry) by punching holes
 * in the RAM *file* even when the mapping is private (ram_block_discard_range), which would
 * zero those pages under every clone of the template and in the engine's cache. A hole punch
 * of the RAM file is answered as done without touching it; QEMU's madvise(MADV_DONTNEED) then
 * drops only this clone's private copies, and those pages read the shared file again (the
 * guest had freed them: their content does not matter to it).
 *
 * Environment (set by `kscope vm clone --lazy`, and `--template` of a free-page-reporting parent):
 *   KSCOPE_UFFD_RAM     the RAM file (matched by device and inode): its mapping is handed to the
 *                       engine (with KSCOPE_UFFD_SOCKET), and no hole is punched in it
 *   KSCOPE_UFFD_SOCKET  optional: the engine's socket (none: a template clone, no hand-off)
 *   KSCOPE_UFFD_HOLES   optional: a file of (file offset, length) u64 pairs to leave unregistered
 *   KSCOPE_SHIM_LOG     optional: where its messages go (QEMU -daemonize sends stderr to /dev/null)
 *
 * Built by host/setup.sh: gcc -shared -fPIC -O2 -I Sources/CKscopeLinux/include ... -ldl -lpthread.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "kscope_handoff.h"

#define MAX_HOLES 65536

static int armed;
static int guarded;
static int log_fd = 2;
static dev_t ram_dev;
static ino_t ram_ino;
static unsigned long discards_kept;

static void die(const char *what) {
  dprintf(log_fd, "kscope-shim: %s: %s\n", what, errno ? strerror(errno) : "failed");
  _exit(111);
}

__attribute__((constructor)) static void kscope_shim_init(void) {
  const char *ram = getenv("KSCOPE_UFFD_RAM");
  if (!ram) return;
  struct stat st;
  const char *log = getenv("KSCOPE_SHIM_LOG");
  if (log) {
    /* Opened now, before QEMU daemonizes and points its stderr at /dev/null. */
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) log_fd = fd;
  }
  if (stat(ram, &st) < 0) die("KSCOPE_UFFD_RAM cannot be read");
  ram_dev = st.st_dev;
  ram_ino = st.st_ino;
  guarded = 1;
  armed = getenv("KSCOPE_UFFD_SOCKET") != NULL;
}

static int is_ram_file(int fd) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == ram_dev && st.st_ino == ram_ino;
}

static int keep_discard_off(int fd, int mode) {
  if (!guarded || !(mode & FALLOC_FL_PUNCH_HOLE) || !is_ram_file(fd)) return 0;
  if (__atomic_fetch_add(&discards_kept, 1, __ATOMIC_RELAXED) == 0) {
    static const char msg[] = "kscope-shim: a discard of guest RAM was kept off the shared RAM file (free page reporting); only this clone's copies are dropped\n";
    if (write(log_fd, msg, sizeof msg - 1) < 0) { /* nothing more to say */ }
  }
  return 1;
}

static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off_t, off_t);

int fallocate(int fd, int mode, off_t offset, off_t len) {
  if (keep_discard_off(fd, mode)) return 0;
  if (!real_fallocate) real_fallocate = (int (*)(int, int, off_t, off_t))dlsym(RTLD_NEXT, "fallocate");
  return real_fallocate(fd, mode, offset, len);
}
int fallocate64(int fd, int mode, off_t offset, off_t len) {
  if (keep_discard_off(fd, mode)) return 0;
  if (!real_fallocate64) real_fallocate64 = (int (*)(int, int, off_t, off_t))dlsym(RTLD_NEXT, "fallocate64");
  return real_fallocate64(fd, mode, offset, len);
}

static void unregister_holes(int uffd, uint64_t base, uint64_t len, uint64_t file_offset) {
  const char *path = getenv("KSCOPE_UFFD_HOLES");
  if (!path) return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("KSCOPE_UFFD_HOLES cannot be opened");
  uint64_t pair[2];
  long page = sysconf(_SC_PAGESIZE);
  for (int n = 0; n < MAX_HOLES && read(fd, pair, sizeof pair) == (ssize_t)sizeof pair; n++) {
    uint64_t off = pair[0], hl = pair[1];
    /* Only whole pages inside this mapping; anything else in the file is ignored. */
    if (off % (uint64_t)page || hl % (uint64_t)page || off < file_offset || hl == 0) continue;
    if (off - file_offset > len || hl > len - (off - file_offset)) continue;
    struct uffdio_range r = {.start = base + (off - file_offset), .len = hl};
    if (ioctl(uffd, UFFDIO_UNREGISTER, &r) < 0) die("unregistering a free run");
  }
  close(fd);
}

/* Ends the clone as soon as the engine's end of the socket closes (the engine died or dropped
 * this clone): a clone must not run on, or wait forever, without the pages it has not got. */
static void *watch_engine(void *arg) {
  int s = *(int *)arg;
  for (;;) {
    struct pollfd p = {.fd = s, .events = POLLIN};
    int n = poll(&p, 1, -1);
    if (n < 0 && errno == EINTR) continue;
    unsigned char b;
    if (n == 1 && (p.revents & (POLLHUP | POLLERR) || read(s, &b, 1) <= 0)) break;
  }
  static const char msg[] = "kscope-shim: the clone engine is gone; this clone stops (its RAM can no longer be served)\n";
  if (write(log_fd, msg, sizeof msg - 1) < 0) { /* nothing more to say */ }
  kill(getpid(), SIGKILL);
  return NULL;
}

static void handoff(void *addr, size_t len, off_t offset) {
  armed = 0; /* one mapping of the RAM file; QEMU does not map it twice */
  int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0) die("userfaultfd");
  /* The features the hand-off ABI promises the engine (kscope_handoff.h). */
  struct uffdio_api api = {.api = UFFD_API, .features = KSCOPE_UFFD_FEATURES};
  if (ioctl(uffd, UFFDIO_API, &api) < 0) die("UFFDIO_API");
  struct uffdio_register reg = {.range = {.start = (uint64_t)addr, .len = len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) die("registering guest RAM");
  unregister_holes(uffd, (uint64_t)addr, len, (uint64_t)offset);

  struct sockaddr_un a = {.sun_family = AF_UNIX};
  const char *path = getenv("KSCOPE_UFFD_SOCKET");
  if (strlen(path) >= sizeof a.sun_path) { errno = ENAMETOOLONG; die("KSCOPE_UFFD_SOCKET"); }
  strcpy(a.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connecting to the engine");

  struct {
    struct kscope_handoff_header h;
    struct kscope_handoff_region r;
  } msg = {{KSCOPE_HANDOFF_MAGIC, KSCOPE_HANDOFF_VERSION, 1, (uint32_t)getpid()},
           {(uint64_t)addr, (uint64_t)len, (uint64_t)offset}};
  struct iovec iov = {.iov_base = &msg, .iov_len = sizeof msg};
  union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  memset(&control, 0, sizeof control);
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.b, .msg_controllen = sizeof control.b};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &uffd, sizeof(int));
  if (sendmsg(s, &m, MSG_NOSIGNAL) != (ssize_t)sizeof msg) die("handing over the userfaultfd");

  struct pollfd p = {.fd = s, .events = POLLIN};
  unsigned char ack = 0;
  if (poll(&p, 1, 10000) != 1 || read(s, &ack, 1) != 1 || ack != KSCOPE_HANDOFF_ACK) {
    errno = ETIMEDOUT;
    die("the engine did not acknowledge within 10 s");
  }
  /* The socket stays open for QEMU's lifetime, so the engine sees this clone go away; and a
   * watcher sees the engine go away. This process keeps its uffd open too: were the engine's
   * the last reference, its death would unregister guest RAM and the guest would read zeros
   * where its pages should be. With it open, faults wait, and the watcher ends the clone. */
  static int watched;
  watched = s;
  pthread_t t;
  if (pthread_create(&t, NULL, watch_engine, &watched) != 0) die("starting the engine watcher");
  pthread_detach(t);
}

static void *(*real_mmap)(void *, size_t, int, int, int, off_t);

static void *hooked(void *addr, size_t len, int prot, int flags, int fd, off_t offset) {
  if (!real_mmap) real_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
  void *p = real_mmap(addr, len, prot, flags, fd, offset);
  if (p != MAP_FAILED && armed && is_ram_file(fd)) handoff(p, len, offset);
  return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset) {
  return hooked(addr, len, prot, flags, fd, offset);
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t offset) {
  return hooked(addr, len, prot, flags, fd, offset);
}
