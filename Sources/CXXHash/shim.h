// libxxhash (Debian: libxxhash-dev), for XXH3 in the RAM content digest.
#ifndef KSCOPE_CXXHASH_SHIM_H
#define KSCOPE_CXXHASH_SHIM_H
#include <stddef.h>
#include <xxhash.h>
#if defined(__x86_64__)
// Debian builds the library for baseline SSE2; its x86 dispatch entry points pick AVX2 (or
// AVX-512) at run time, about twice as fast on a 64 KiB block.
#include <xxh_x86dispatch.h>
static inline XXH128_hash_t kscope_xxh3_128(const void *input, size_t length) {
  return XXH3_128bits_dispatch(input, length);
}
static inline XXH_errorcode kscope_xxh3_128_update(XXH3_state_t *state, const void *input, size_t length) {
  return XXH3_128bits_update_dispatch(state, input, length);
}
#else
static inline XXH128_hash_t kscope_xxh3_128(const void *input, size_t length) {
  return XXH3_128bits(input, length);
}
static inline XXH_errorcode kscope_xxh3_128_update(XXH3_state_t *state, const void *input, size_t length) {
  return XXH3_128bits_update(state, input, length);
}
#endif
#endif
