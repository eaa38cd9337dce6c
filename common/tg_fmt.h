/* tg_fmt.h: integers to ASCII for the hot path (response heads, chunk size lines), where the
 * printf family's format parsing and locale lookups cost more than the bytes they write. */
#ifndef TG_FMT_H
#define TG_FMT_H

#include <stddef.h>
#include <stdint.h>

#define TG_FMT_U64_MAX 20 /* digits in UINT64_MAX */

/* Writes v in decimal to out (at least TG_FMT_U64_MAX bytes, not NUL-terminated); returns the
 * length. */
static inline size_t tg_fmt_u64(char *out, uint64_t v)
{
    char tmp[TG_FMT_U64_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* Writes v in lower-case hexadecimal to out (at least 16 bytes); returns the length. */
static inline size_t tg_fmt_hex(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

#endif
