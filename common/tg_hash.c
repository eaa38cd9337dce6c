/* tg_hash.c: hashing helpers over OpenSSL's EVP; any thread. */
#include "tg_hash.h"

#include <openssl/evp.h>
#include <pthread.h>

#include "tg_banned.h"

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* EVP_sha256() makes OpenSSL 3 look the algorithm up on every digest; fetch it once. */
static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void tg_sha256(const void *p, size_t n, uint8_t out[TG_SHA256_LEN])
{
    unsigned int len = TG_SHA256_LEN;
    pthread_once(&sha256_once, sha256_fetch);
    /* EVP_Digest cannot fail for SHA-256 with valid arguments short of memory exhaustion, where
     * the output stays zeroed and matches no stored key. */
    for (int i = 0; i < TG_SHA256_LEN; i++)
        out[i] = 0;
    EVP_Digest(p, n, out, &len, sha256_md ? sha256_md : EVP_sha256(), NULL);
}

void tg_hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tg_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t n)
{
    if (hexlen != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]);
        int lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool tg_ct_eq(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(x[i] ^ y[i]);
    return d == 0;
}

uint64_t tg_fnv1a(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 14695981039346656037ULL; /* the FNV-1a 64-bit offset basis */
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}
