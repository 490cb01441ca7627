#include "kscope_nbd.h"

#include <errno.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct kscope_nbd {
  struct nbd_handle *h;
  int spin;
};

static void message(char *error, size_t len, const char *what) {
  const char *e = nbd_get_error();
  snprintf(error, len, "%s: %s", what, e ? e : strerror(errno));
}

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Runs the handle's state machine until `done` says so or the deadline passes. */
static int wait_until(struct nbd_handle *h, int spin, int64_t deadline,
                      int (*done)(struct nbd_handle *, void *), void *arg) {
  /* Optionally spin first (non-blocking polls): sleeping in poll() can cost an idle-CPU wake-up
   * (~45 µs on these machines, themselves VMs), but spinning starves a server on this CPU. */
  for (int k = 0; k < spin && !done(h, arg); k++) {
    if (nbd_poll(h, 0) < 0) return -1;
  }
  while (!done(h, arg)) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return -2;
    int r = nbd_poll(h, left > 100 ? 100 : (int)left);
    if (r < 0) return -1;
  }
  return 0;
}

static int connected(struct nbd_handle *h, void *arg) {
  (void)arg;
  return nbd_aio_is_ready(h) == 1 || nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1;
}

struct kscope_nbd *kscope_nbd_open(const char *uri, int timeout_ms, char *error, size_t error_len) {
  struct nbd_handle *h = nbd_create();
  if (!h) {
    message(error, error_len, "nbd_create");
    return NULL;
  }
  nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX);
  nbd_set_uri_allow_tls(h, LIBNBD_TLS_DISABLE);
  nbd_set_uri_allow_local_file(h, false);
  /* Simple replies: a 16-byte header, then the data (structured replies cost two more recv()
   * per read, for hole and error chunks the engine does not need). */
  nbd_set_request_structured_replies(h, false);
  if (nbd_aio_connect_uri(h, uri) < 0) {
    message(error, error_len, "connecting");
    nbd_close(h);
    return NULL;
  }
  int r = wait_until(h, 0, now_ms() + timeout_ms, connected, NULL);
  if (r != 0 || nbd_aio_is_ready(h) != 1) {
    if (r == -2) snprintf(error, error_len, "connecting: no answer within %d ms", timeout_ms);
    else message(error, error_len, "connecting");
    nbd_close(h);
    return NULL;
  }
  struct kscope_nbd *c = malloc(sizeof *c);
  if (!c) {
    nbd_close(h);
    snprintf(error, error_len, "out of memory");
    return NULL;
  }
  c->h = h;
  c->spin = 0;
  return c;
}

void kscope_nbd_close(struct kscope_nbd *c) {
  if (!c) return;
  if (c->h) nbd_close(c->h);
  free(c);
}

int64_t kscope_nbd_size(struct kscope_nbd *c) { return nbd_get_size(c->h); }

void kscope_nbd_set_spin(struct kscope_nbd *c, int polls) { c->spin = polls < 0 ? 0 : polls; }

static int drained(struct nbd_handle *h, void *arg) {
  (void)arg;
  return nbd_aio_in_flight(h) == 0 || nbd_aio_is_dead(h) == 1;
}

int kscope_nbd_pread(struct kscope_nbd *c, void *buf, size_t len, uint64_t offset, size_t chunk,
                     int timeout_ms, char *error, size_t error_len) {
  if (chunk == 0) chunk = len;
  size_t n = (len + chunk - 1) / chunk;
  int64_t cookies_stack[64];
  int64_t *cookies = n <= 64 ? cookies_stack : malloc(n * sizeof *cookies);
  if (!cookies) {
    snprintf(error, error_len, "out of memory");
    return -1;
  }
  int result = 0;
  size_t issued = 0;
  for (; issued < n; issued++) {
    size_t at = issued * chunk, count = len - at < chunk ? len - at : chunk;
    cookies[issued] = nbd_aio_pread(c->h, (char *)buf + at, count, offset + at,
                                    (nbd_completion_callback){0}, 0);
    if (cookies[issued] < 0) {
      message(error, error_len, "reading");
      result = -1;
      break;
    }
  }
  int w = wait_until(c->h, c->spin, now_ms() + timeout_ms, drained, NULL);
  if (result == 0 && w == -2) {
    snprintf(error, error_len, "reading %zu bytes at %llu: no answer within %d ms", len,
             (unsigned long long)offset, timeout_ms);
    result = -1;
  } else if (result == 0 && (w == -1 || nbd_aio_is_dead(c->h) == 1)) {
    message(error, error_len, "reading");
    result = -1;
  }
  for (size_t i = 0; i < issued && result == 0; i++) {
    if (nbd_aio_command_completed(c->h, (uint64_t)cookies[i]) != 1) {
      message(error, error_len, "reading");
      result = -1;
    }
  }
  if (cookies != cookies_stack) free(cookies);
  return result;
}

/* One request slot of a copy: its buffer, where its bytes go, and whether libnbd finished it. */
struct slot {
  char *buf;
  uint64_t offset;
  size_t len;
  int busy, done, err;
};

static int slot_done(void *user_data, int *error) {
  struct slot *s = user_data;
  s->done = 1;
  s->err = *error;
  return 1; /* retire the command: nothing else asks after it */
}

static int write_all(int fd, const char *p, size_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t w = pwrite(fd, p, len, (off_t)offset);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    len -= (size_t)w;
    offset += (uint64_t)w;
  }
  return 0;
}

int kscope_nbd_copy(struct kscope_nbd *c, int fd, const uint64_t *offsets, const uint64_t *lengths, size_t n,
                    size_t chunk, int window, int timeout_ms, char *error, size_t error_len) {
  if (chunk == 0 || window < 1 || window > 1024) {
    snprintf(error, error_len, "copy: bad request size or window");
    return -1;
  }
  struct slot *slots = calloc((size_t)window, sizeof *slots);
  if (!slots) {
    snprintf(error, error_len, "out of memory");
    return -1;
  }
  int result = 0;
  for (int i = 0; i < window && result == 0; i++) {
    if (posix_memalign((void **)&slots[i].buf, 4096, chunk) != 0) {
      slots[i].buf = NULL;
      snprintf(error, error_len, "out of memory");
      result = -1;
    }
  }
  size_t range = 0;
  uint64_t at = 0; /* bytes of ranges[range] already issued */
  int64_t deadline = now_ms() + timeout_ms;
  while (result == 0) {
    /* Keep every slot busy while bytes remain: the server always has the next request. */
    int busy = 0;
    for (int i = 0; i < window; i++) {
      struct slot *s = &slots[i];
      if (!s->busy) {
        while (range < n && at >= lengths[range]) {
          range++;
          at = 0;
        }
        if (range < n) {
          s->offset = offsets[range] + at;
          s->len = lengths[range] - at < chunk ? (size_t)(lengths[range] - at) : chunk;
          at += s->len;
          s->busy = 1;
          s->done = 0;
          s->err = 0;
          if (nbd_aio_pread(c->h, s->buf, s->len, s->offset,
                            (nbd_completion_callback){.callback = slot_done, .user_data = s}, 0) < 0) {
            message(error, error_len, "reading");
            s->busy = 0;
            result = -1;
            break;
          }
        }
      }
      busy += s->busy;
    }
    if (result != 0 || busy == 0) break;
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      snprintf(error, error_len, "reading: no answer within %d ms", timeout_ms);
      result = -1;
      break;
    }
    if (nbd_poll(c->h, left > 100 ? 100 : (int)left) < 0 || nbd_aio_is_dead(c->h) == 1) {
      message(error, error_len, "reading");
      result = -1;
      break;
    }
    for (int i = 0; i < window && result == 0; i++) {
      struct slot *s = &slots[i];
      if (!s->busy || !s->done) continue;
      s->busy = 0;
      deadline = now_ms() + timeout_ms; /* progress: the deadline bounds a stall, not the copy */
      if (s->err) {
        snprintf(error, error_len, "reading %zu bytes at %llu: %s", s->len, (unsigned long long)s->offset,
                 strerror(s->err));
        result = -1;
      } else if (write_all(fd, s->buf, s->len, s->offset) != 0) {
        snprintf(error, error_len, "writing the cache file at %llu: %s", (unsigned long long)s->offset,
                 strerror(errno));
        result = -1;
      }
    }
  }
  /* A failed copy may leave requests in flight into these buffers: close the connection first
   * (a failed connection is never reused), so libnbd is done with them before they are freed. */
  if (result != 0) {
    nbd_close(c->h);
    c->h = NULL;
  }
  for (int i = 0; i < window; i++) free(slots[i].buf);
  free(slots);
  return result;
}
