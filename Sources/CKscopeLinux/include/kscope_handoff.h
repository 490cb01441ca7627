/* The hand-off of a userfaultfd from the process that owns a guest RAM mapping (a replay worker,
 * or QEMU through the LD_PRELOAD shim) to kscope's clone engine, over a unix stream socket.
 *
 * The owner sends one message: a kscope_handoff_header followed by `region_count`
 * kscope_handoff_region entries, with the uffd attached as SCM_RIGHTS. The engine answers one
 * byte (KSCOPE_HANDOFF_ACK) once it serves faults; the owner touches nothing before that. This
 * header is the only definition of the ABI: Swift (through this module) and the C shim include it.
 */
#ifndef KSCOPE_HANDOFF_H
#define KSCOPE_HANDOFF_H

#include <stdint.h>

#define KSCOPE_HANDOFF_MAGIC 0x6b73636fu /* "kscp" */
#define KSCOPE_HANDOFF_VERSION 1u
#define KSCOPE_HANDOFF_MAX_REGIONS 16u
#define KSCOPE_HANDOFF_ACK 0x06

struct kscope_handoff_header {
  uint32_t magic;
  uint32_t version;
  uint32_t region_count; /* at most KSCOPE_HANDOFF_MAX_REGIONS */
  uint32_t pid;          /* the owner, for reports */
};

/* One registered range of the owner's address space and where it lies in the RAM file. */
struct kscope_handoff_region {
  uint64_t host_address; /* start of the registered range in the owner's address space */
  uint64_t length;       /* bytes, a multiple of the page size */
  uint64_t file_offset;  /* offset of host_address within the guest RAM file */
};

_Static_assert(sizeof(struct kscope_handoff_header) == 16, "handoff header is 16 bytes");
_Static_assert(sizeof(struct kscope_handoff_region) == 24, "handoff region is 24 bytes");

#endif
