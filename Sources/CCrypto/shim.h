// OpenSSL's libcrypto (Debian: libssl-dev), for SHA-256 through the EVP digest interface.
#ifndef KSCOPE_CCRYPTO_SHIM_H
#define KSCOPE_CCRYPTO_SHIM_H
#include <openssl/evp.h>
#endif
