/* The latency of one 4 KiB NBD read, without userfaultfd: N reads at seeded random offsets of
 * an export, one at a time, each through libnbd's asynchronous API (polls before sleeping: SPIN).
 * Prints p50/p90/p99 in µs. What a miss over NBD costs before the engine adds anything.
 *
 *   gcc -O2 -o nbd-latency host/bench/nbd-latency.c -lnbd
 *   taskset -c 0 nbdkit -f -r -i 127.0.0.1 -p 10810 --threads 1 file file=/dev/shm/ram &
 *   ./nbd-latency nbd://127.0.0.1:10810/ 20000 0 0        # URI N CPU(-1: any) SPIN
 */
#define _GNU_SOURCE
#include <libnbd.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: nbd-latency URI N CPU SPIN\n");
    return 2;
  }
  int n = atoi(argv[2]), cpu = atoi(argv[3]);
  long spin = atol(argv[4]);
  if (n < 100) n = 100;
  if (cpu >= 0) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
  }
  struct nbd_handle *h = nbd_create();
  if (!h || nbd_connect_uri(h, argv[1]) < 0) {
    fprintf(stderr, "nbd-latency: %s\n", nbd_get_error());
    return 1;
  }
  int64_t pages = nbd_get_size(h) / 4096;
  if (pages < 1) return 1;
  char *buf = aligned_alloc(4096, 4096);
  uint64_t *lat = malloc((size_t)n * sizeof *lat), x = 7;
  for (int i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
    uint64_t t0 = now_ns();
    int64_t c = nbd_aio_pread(h, buf, 4096, (x % (uint64_t)pages) * 4096, (nbd_completion_callback){0}, 0);
    if (c < 0) {
      fprintf(stderr, "nbd-latency: %s\n", nbd_get_error());
      return 1;
    }
    for (long k = 0; nbd_aio_command_completed(h, (uint64_t)c) == 0; k++) {
      if (nbd_poll(h, k < spin ? 0 : -1) < 0) {
        fprintf(stderr, "nbd-latency: %s\n", nbd_get_error());
        return 1;
      }
    }
    lat[i] = now_ns() - t0;
  }
  qsort(lat, (size_t)n, sizeof *lat, cmp);
  printf("p50 %.1f p90 %.1f p99 %.1f us\n", lat[n / 2] / 1e3, lat[n * 9 / 10] / 1e3, lat[n * 99 / 100] / 1e3);
  nbd_close(h);
  return 0;
}
