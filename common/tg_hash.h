/* tg_hash.h: key hashing (SHA-256), hex, constant-time compare, and a small non-crypto hash. */
#ifndef TG_HASH_H
#define TG_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_SHA256_LEN 32

void tg_sha256(const void *p, size_t n, uint8_t out[TG_SHA256_LEN]);
/* Writes 2*n lowercase hex chars plus NUL into out (size 2*n+1). */
void tg_hex_encode(const uint8_t *p, size_t n, char *out);
/* Decodes exactly 2*n hex chars (either case); -1 on a bad char or length. */
int tg_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t n);
/* Compares in time that depends only on n. */
bool tg_ct_eq(const void *a, const void *b, size_t n);
/* FNV-1a, for in-memory tables keyed by trusted or already-hashed data. */
uint64_t tg_fnv1a(const void *p, size_t n);

#endif
