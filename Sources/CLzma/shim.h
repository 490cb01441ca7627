// liblzma (Debian: liblzma-dev), for xz-compressed kernel images.
#ifndef KSCOPE_CLZMA_SHIM_H
#define KSCOPE_CLZMA_SHIM_H
#include <lzma.h>
#endif
