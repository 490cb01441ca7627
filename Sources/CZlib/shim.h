// zlib (Debian: zlib1g-dev), for the deflate stream inside PNG files.
#ifndef KSCOPE_CZLIB_SHIM_H
#define KSCOPE_CZLIB_SHIM_H
#include <zlib.h>
#endif
