// libzstd (Debian: libzstd-dev), for zstd-compressed kernel images (Debian's 6.12 vmlinuz).
#ifndef KSCOPE_CZSTD_SHIM_H
#define KSCOPE_CZSTD_SHIM_H
#include <zstd.h>
#endif
