/* tg_buf.h: a growable byte buffer with a hard maximum fixed at init (like curl's dynbuf). */
#ifndef TG_BUF_H
#define TG_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tg_err.h"

typedef struct tg_buf {
    char *base; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* appends past this fail with TG_ETOOBIG and change nothing */
} tg_buf_t;

#define TG_BUF_INIT(maxbytes)                                                                      \
    {                                                                                              \
        NULL, 0, 0, (maxbytes)                                                                     \
    }

void tg_buf_init(tg_buf_t *b, size_t max);
/* Frees the storage; the buffer may be reused after tg_buf_init. */
void tg_buf_dispose(tg_buf_t *b);
/* Appends n bytes; TG_ETOOBIG past max, TG_ENOMEM; on failure the contents are unchanged. */
int tg_buf_append(tg_buf_t *b, const void *p, size_t n) TG_WUR;
int tg_buf_appendf(tg_buf_t *b, const char *fmt, ...) TG_WUR __attribute__((format(printf, 2, 3)));
/* Appends v in decimal (no printf: the data plane's hot path formats with these). */
int tg_buf_append_i64(tg_buf_t *b, int64_t v) TG_WUR;
/* Appends v / 10^decimals with exactly `decimals` fraction digits (v >= 0 or not), e.g.
 * (1500, 3) -> "1.500"; decimals at most 18. */
int tg_buf_append_fixed(tg_buf_t *b, int64_t v, int decimals) TG_WUR;
/* Appends s as a JSON string literal with quotes, escaping as RFC 8259 requires. */
int tg_buf_append_json_str(tg_buf_t *b, const char *s, size_t n) TG_WUR;
/* Ensures room for n more bytes. */
int tg_buf_reserve(tg_buf_t *b, size_t n) TG_WUR;
/* Drops the first n bytes. */
void tg_buf_consume(tg_buf_t *b, size_t n);
/* Hands the storage to the caller (who frees it) and empties the buffer. */
char *tg_buf_detach(tg_buf_t *b, size_t *len);
static inline void tg_buf_reset(tg_buf_t *b)
{
    b->len = 0;
}

/* Byte-string equality for data that is not NUL-terminated. */
static inline bool tg_mem_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}
/* ASCII case-insensitive equality (HTTP header names). */
bool tg_mem_caseeq(const char *a, size_t alen, const char *b, size_t blen);
/* memmem without GNU extensions. */
const char *tg_memmem(const char *hay, size_t hlen, const char *needle, size_t nlen);
/* Last occurrence of needle in hay, or NULL. */
const char *tg_memrmem(const char *hay, size_t hlen, const char *needle, size_t nlen);

#endif
