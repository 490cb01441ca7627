/* A read-only NBD client for the clone engine's remote page source, on libnbd's asynchronous
 * API: one read is split into chunks that are all in flight at once, and nothing waits past a
 * deadline (a dead server fails the read, it never hangs a fault). */
#ifndef KSCOPE_NBD_H
#define KSCOPE_NBD_H

#include <stddef.h>
#include <stdint.h>

struct kscope_nbd;

/* Connects to an nbd:// URI (TCP only, no TLS). On failure returns NULL and writes a message. */
struct kscope_nbd *kscope_nbd_open(const char *uri, int timeout_ms, char *error, size_t error_len);
void kscope_nbd_close(struct kscope_nbd *c);
int64_t kscope_nbd_size(struct kscope_nbd *c);
/* Non-blocking polls a read makes before it sleeps in poll() (default 0). */
void kscope_nbd_set_spin(struct kscope_nbd *c, int polls);
/* Reads len bytes at offset, in chunks of `chunk` bytes all in flight; 0, or -1 with a message
 * (server gone, deadline passed). */
int kscope_nbd_pread(struct kscope_nbd *c, void *buf, size_t len, uint64_t offset, size_t chunk,
                     int timeout_ms, char *error, size_t error_len);
/* Copies the export's bytes of each range (offsets[i], lengths[i]) into `fd` at the same offsets,
 * keeping `window` requests of `chunk` bytes in flight at all times (each written with one pwrite
 * as it lands, its slot reissued at once). `timeout_ms` bounds a stall, not the whole copy. 0, or
 * -1 with a message; after -1 the connection must be closed. */
int kscope_nbd_copy(struct kscope_nbd *c, int fd, const uint64_t *offsets, const uint64_t *lengths, size_t n,
                    size_t chunk, int window, int timeout_ms, char *error, size_t error_len);

#endif
