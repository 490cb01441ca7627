// elfutils' libelf and libdw, as one C module for Swift (Debian: libdw-dev, libelf-dev).
#ifndef KSCOPE_CELFUTILS_SHIM_H
#define KSCOPE_CELFUTILS_SHIM_H
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <dwarf.h>
#include <gelf.h>
#include <libelf.h>
#endif
