// The C side of host/bench/libs/run.sh: libxxhash, libcrypto and libgcrypt on one buffer.
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <xxhash.h>
#include <openssl/evp.h>
#include <gcrypt.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(void){
  size_t n=256u<<20; uint64_t *w=malloc(n); uint64_t x=0x9E3779B97F4A7C15ull;
  for(size_t i=0;i<n/8;i++){x^=x<<13;x^=x>>7;x^=x<<17;w[i]=x;}
  double best=1e9; uint64_t sink=0;
  for(int r=0;r<3;r++){double t=now();sink+=XXH64(w,n,0);double d=now()-t;if(d<best)best=d;}
  printf("libxxhash XXH64: %.2f GB/s (%llu)\n",n/best/1e9,(unsigned long long)sink);
  best=1e9;
  for(int r=0;r<3;r++){double t=now();sink+=XXH3_64bits(w,n);double d=now()-t;if(d<best)best=d;}
  printf("libxxhash XXH3_64bits: %.2f GB/s\n",n/best/1e9);
  best=1e9; unsigned char md[32]; unsigned int len;
  for(int r=0;r<3;r++){double t=now();EVP_Digest(w,n,md,&len,EVP_sha256(),NULL);double d=now()-t;if(d<best)best=d;}
  printf("libcrypto SHA256: %.2f GB/s %02x%02x%02x%02x\n",n/best/1e9,md[0],md[1],md[2],md[3]);
  best=1e9;
  for(int r=0;r<3;r++){double t=now();gcry_md_hash_buffer(GCRY_MD_SHA256,md,w,n);double d=now()-t;if(d<best)best=d;}
  printf("libgcrypt SHA256: %.2f GB/s %02x%02x%02x%02x\n",n/best/1e9,md[0],md[1],md[2],md[3]);
  { size_t m=1u<<20; double b1=1e9,b2=1e9; for(int r=0;r<5;r++){double t=now();for(size_t o=0;o<n;o+=m)sink+=XXH64((char*)w,m,0);double d=now()-t;if(d<b1)b1=d;
    t=now();for(size_t o=0;o<n;o+=m)sink+=XXH3_64bits((char*)w,m);d=now()-t;if(d<b2)b2=d;}
    printf("cache-resident 1 MiB x256: libxxhash XXH64 %.2f GB/s, XXH3 %.2f GB/s\n",n/b1/1e9,n/b2/1e9);}
  return 0;
}
