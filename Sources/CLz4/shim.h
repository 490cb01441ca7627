// liblz4 (Debian: liblz4-dev), for LZ4-compressed kernel images (Debian's 6.1 vmlinuz).
#ifndef KSCOPE_CLZ4_SHIM_H
#define KSCOPE_CLZ4_SHIM_H
#include <lz4.h>
#endif
