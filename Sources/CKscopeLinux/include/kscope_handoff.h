/* The hand-off of a userfaultfd from the process that owns a guest RAM mapping (a replay worker,
 * or QEMU through the LD_PRELOAD shim) to kscope's clone engine, over a unix stream socket.
 *
 * The owner sends one message: a kscope_handoff_header followed by `region_count`
 * kscope_handoff_region entries, with the uffd attached as SCM_RIGHTS. The engine answers one
 * byte (KSCOPE_HANDOFF_ACK) once it serves faults; the owner touches nothing before that. This
 * header is the only definition of the ABI: Swift (through this module) and the C shim include it.
 *
 * Version 2: the owner opens the uffd with exactly KSCOPE_UFFD_FEATURES (UFFDIO_API), so the
 * engine also hears when the owner gives pages back (madvise MADV_DONTNEED: REMOVE), unmaps part
 * of a registered range (UNMAP) or moves it (mremap: REMAP). Without REMAP the kernel would drop
 * the registration of a moved range, and its unfetched pages would read as zeros.
 */
#ifndef KSCOPE_HANDOFF_H
#define KSCOPE_HANDOFF_H

#include <linux/userfaultfd.h>
#include <stdint.h>

#define KSCOPE_HANDOFF_MAGIC 0x6b73636fu /* "kscp" */
#define KSCOPE_HANDOFF_VERSION 2u
#define KSCOPE_HANDOFF_MAX_REGIONS 16u
#define KSCOPE_HANDOFF_ACK 0x06
/* The UFFDIO_API features every owner requests (and the engine therefore handles). */
#define KSCOPE_UFFD_FEATURES (UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)
/* The same, as a constant Swift can see (it does not import expression macros). */
static const uint64_t kscope_uffd_features = KSCOPE_UFFD_FEATURES;

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
