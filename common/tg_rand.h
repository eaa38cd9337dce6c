/* tg_rand.h: a fast per-thread generator (xoshiro256**) seeded from the kernel, for ids. Not for
 * secrets: keys and tokens come from OpenSSL's RAND_bytes. */
#ifndef TG_RAND_H
#define TG_RAND_H

#include <stdint.h>

typedef struct tg_rand {
    uint64_t s[4];
} tg_rand_t;

/* Seeds from getrandom(2); 0 or TG_EIO. */
int tg_rand_seed(tg_rand_t *r);
uint64_t tg_rand_next(tg_rand_t *r);
/* Writes a UUID v4 as 36 chars plus NUL. */
void tg_uuid4(tg_rand_t *r, char out[37]);

#endif
