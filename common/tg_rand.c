/* tg_rand.c: per-thread id generator; the caller owns the state, so no locking. */
#include "tg_rand.h"

#include <sys/random.h>

#include "tg_err.h"
#include "tg_hash.h"

#include "tg_banned.h"

int tg_rand_seed(tg_rand_t *r)
{
    size_t got = 0;
    while (got < sizeof(r->s)) {
        ssize_t n = getrandom((char *)r->s + got, sizeof(r->s) - got, 0);
        if (n < 0)
            return TG_EIO;
        got += (size_t)n;
    }
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1; /* the all-zero state is a fixed point */
    return 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t tg_rand_next(tg_rand_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void tg_uuid4(tg_rand_t *r, char out[37])
{
    uint8_t b[16];
    uint64_t a = tg_rand_next(r);
    uint64_t c = tg_rand_next(r);
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(a >> (8 * i));
        b[8 + i] = (uint8_t)(c >> (8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char hex[33];
    tg_hex_encode(b, 16, hex);
    int j = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[j++] = '-';
        out[j++] = hex[i];
    }
    out[36] = '\0';
}
