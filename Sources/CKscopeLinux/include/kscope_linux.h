/* Small C helpers for Linux interfaces Swift cannot reach directly: userfaultfd (its ioctls
 * are macros and its messages a union) and SCM_RIGHTS. Each returns 0 or a positive count on
 * success and -errno on failure, so the Swift side has one error path. */
#ifndef KSCOPE_LINUX_H
#define KSCOPE_LINUX_H

#include <stddef.h>
#include <stdint.h>
#include "kscope_handoff.h"

/* A new userfaultfd (O_CLOEXEC | O_NONBLOCK), API handshake done with `features` (for a clone
 * handed to the engine: KSCOPE_UFFD_FEATURES). */
int kscope_uffd_open(uint64_t features);
/* Registers [start, start+len) for MISSING faults. */
int kscope_uffd_register_missing(int uffd, uint64_t start, uint64_t len);
int kscope_uffd_unregister(int uffd, uint64_t start, uint64_t len);
/* Wakes threads waiting on faults in [start, start+len). */
int kscope_uffd_wake(int uffd, uint64_t start, uint64_t len);
/* Maps zero pages at [start, start+len) and wakes. -EEXIST: already mapped; -EAGAIN: an event
 * (REMOVE, UNMAP, REMAP) is pending and must be read first; -ENOENT: no longer registered
 * there; -ESRCH: the owner's address space is gone. */
int kscope_uffd_zeropage(int uffd, uint64_t start, uint64_t len);

/* One event read from a uffd. kind: 0 = nothing to read (EAGAIN); 1 = page fault (address,
 * write); 2 = REMOVE of [address, end); 3 = UNMAP of [address, end); 4 = REMAP of `length` bytes
 * from `address` to `to`; 5 = another event (ignored). */
struct kscope_uffd_event {
  int kind;
  int write;
  uint64_t address;
  uint64_t end;
  uint64_t to;
  uint64_t length;
};
int kscope_uffd_read(int uffd, struct kscope_uffd_event *event);

/* poll() on up to two fds for input, with a timeout in ms; returns a bit mask of ready fds
 * (1: first, 2: second, 4: first hung up, 8: second hung up), 0 on timeout. */
int kscope_poll2(int fd1, int fd2, int timeout_ms);

/* Sends `len` bytes with one fd attached (SCM_RIGHTS). */
int kscope_send_fd(int sock, const void *buf, size_t len, int fd);
/* Receives up to `len` bytes and at most one attached fd (*fd = -1 if none). */
int kscope_recv_fd(int sock, void *buf, size_t len, int *fd);

/* A unix stream socket listening on `path` (bound to a temporary name, then renamed over
 * `path`, so a client never connects to a half-made socket). */
int kscope_unix_listen(const char *path);
int kscope_unix_connect(const char *path);
/* The pid of a unix socket's peer (SO_PEERCRED), or -errno. */
int kscope_peer_pid(int sock);
/* accept() with SOCK_CLOEXEC. */
int kscope_unix_accept(int listener);

/* /proc/self/pagemap entries for [start, start+len): counts present pages, and of those the
 * private ones (not file-backed or shared: the copy-on-write copies). Optionally fills
 * `present_bits` (one bit per page). */
int kscope_pagemap_scan(uint64_t start, uint64_t len, uint64_t *present, uint64_t *private_pages,
                        uint64_t *present_bits);

/* SIGKILL this process when its parent exits (prctl PR_SET_PDEATHSIG); -ESRCH if it already has. */
int kscope_die_with_parent(void);

/* Pins the calling thread to one CPU (cpu < 0: any CPU). */
int kscope_pin_cpu(int cpu);

/* Moves the mapping at [old, old+len) to `to` (mremap MREMAP_MAYMOVE | MREMAP_FIXED; Swift cannot
 * call the variadic mremap). 0 or -errno. */
int kscope_mremap_fixed(void *old, size_t len, void *to);

/* Monotonic nanoseconds. */
uint64_t kscope_now_ns(void);

/* A volatile read or write of one byte (so a touch is never optimised away). */
uint8_t kscope_touch_read(const volatile uint8_t *p);
void kscope_touch_write(volatile uint8_t *p, uint8_t v);

#endif
