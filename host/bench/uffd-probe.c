/* The floor for kscope's clone engine: the smallest userfaultfd miss loop, in C.
 *
 * A private mapping of an empty tmpfs file is registered for MISSING faults; one thread
 * touches pages in a seeded random order, another serves each fault by copying the page from a
 * source file into the tmpfs file (pread + pwrite) and waking the faulting thread, which the
 * kernel then serves from page cache. This is exactly the engine's path for a local snapshot,
 * without the engine. Prints one JSON line with per-fault latency percentiles (ns).
 *
 * A SOURCE that is an nbd:// (or nbd+unix://) URI is read with libnbd instead (one synchronous
 * 4 KiB read per fault): the floor of the engine's remote path, against the same server.
 *
 *   uffd-probe SOURCE CACHE-FILE PAGES PLACEMENT     placement: same | other | any
 * Built by kscope-bench (gcc -O2 -pthread ... -lnbd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libnbd.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int uffd, src, cache;
static struct nbd_handle *nbd;
static char *base;
static long page;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static int handler_cpu = -1;

static void *handler(void *arg) {
  (void)arg;
  pin(handler_cpu);
  char *buf = aligned_alloc((size_t)page, (size_t)page);
  for (;;) {
    struct pollfd p = {.fd = uffd, .events = POLLIN};
    if (poll(&p, 1, -1) < 0) continue;
    struct uffd_msg m;
    if (read(uffd, &m, sizeof m) != sizeof m) continue;
    if (m.event != UFFD_EVENT_PAGEFAULT) continue;
    uint64_t addr = m.arg.pagefault.address & ~(uint64_t)(page - 1);
    off_t off = (off_t)(addr - (uint64_t)base);
    if (nbd ? nbd_pread(nbd, buf, (size_t)page, (uint64_t)off, 0) != 0 : pread(src, buf, (size_t)page, off) != page) abort();
    if (pwrite(cache, buf, (size_t)page, off) != page) abort();
    struct uffdio_range r = {.start = addr, .len = (uint64_t)page};
    ioctl(uffd, UFFDIO_WAKE, &r);
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: uffd-probe SOURCE CACHE-FILE PAGES same|other|any\n");
    return 2;
  }
  page = sysconf(_SC_PAGESIZE);
  long pages = atol(argv[3]);
  int toucher_cpu = strcmp(argv[4], "any") ? 0 : -1;
  handler_cpu = !strcmp(argv[4], "same") ? 0 : !strcmp(argv[4], "other") ? 1 : -1;
  if (!strncmp(argv[1], "nbd://", 6) || !strncmp(argv[1], "nbd+unix://", 11)) {
    nbd = nbd_create();
    if (!nbd || nbd_connect_uri(nbd, argv[1]) < 0) {
      fprintf(stderr, "uffd-probe: %s\n", nbd_get_error());
      return 1;
    }
    src = 0;
  } else {
    src = open(argv[1], O_RDONLY);
  }
  cache = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (src < 0 || cache < 0 || ftruncate(cache, pages * page) < 0) { perror("open"); return 1; }
  base = mmap(NULL, (size_t)(pages * page), PROT_READ | PROT_WRITE, MAP_PRIVATE, cache, 0);
  uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  struct uffdio_api api = {.api = UFFD_API};
  struct uffdio_register reg = {.range = {.start = (uint64_t)base, .len = (uint64_t)(pages * page)},
                                .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (base == MAP_FAILED || uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
    perror("userfaultfd");
    return 1;
  }
  pthread_t t;
  pthread_create(&t, NULL, handler, NULL);
  pin(toucher_cpu);
  uint64_t *lat = malloc((size_t)pages * sizeof *lat), state = 7;
  long *order = malloc((size_t)pages * sizeof *order);
  for (long i = 0; i < pages; i++) order[i] = i;
  for (long i = pages - 1; i > 0; i--) { /* seeded shuffle (splitmix64) */
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    long j = (long)(z % (uint64_t)(i + 1));
    long x = order[i]; order[i] = order[j]; order[j] = x;
  }
  volatile char sink = 0;
  for (long i = 0; i < pages; i++) {
    uint64_t t0 = now_ns();
    sink += base[order[i] * page];
    lat[i] = now_ns() - t0;
  }
  (void)sink;
  qsort(lat, (size_t)pages, sizeof *lat, cmp);
  printf("{\"faults\": %ld, \"p50_ns\": %llu, \"p99_ns\": %llu, \"max_ns\": %llu, \"placement\": \"%s\"}\n", pages,
         (unsigned long long)lat[pages / 2], (unsigned long long)lat[pages * 99 / 100],
         (unsigned long long)lat[pages - 1], argv[4]);
  unlink(argv[2]);
  return 0;
}
