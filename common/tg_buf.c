/* tg_buf.c: bounded growable buffers; any thread, no locking (a buffer has one owner). */
#include "tg_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tg_banned.h"

void tg_buf_init(tg_buf_t *b, size_t max)
{
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void tg_buf_dispose(tg_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
}

int tg_buf_reserve(tg_buf_t *b, size_t n)
{
    if (n > b->max - b->len) /* this form cannot overflow */
        return TG_ETOOBIG;
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n)
        cap = cap > b->max / 2 ? b->max : cap * 2;
    if (cap < b->len + n) /* max smaller than one doubling step */
        cap = b->len + n;
    char *p = realloc(b->base, cap);
    if (!p)
        return TG_ENOMEM;
    b->base = p;
    b->cap = cap;
    return 0;
}

int tg_buf_append(tg_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = tg_buf_reserve(b, n);
    if (rc != 0)
        return rc;
    memcpy(b->base + b->len, p, n);
    b->len += n;
    return 0;
}

int tg_buf_appendf(tg_buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return TG_EINVAL;
    if ((size_t)n < sizeof(small))
        return tg_buf_append(b, small, (size_t)n);
    int rc = tg_buf_reserve(b, (size_t)n + 1);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one (a stray continuation
 * byte, a truncated or overlong sequence, a surrogate, or beyond U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int tg_buf_append_json_str(tg_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    int rc = tg_buf_append(b, "\"", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = tg_buf_append(b, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = tg_buf_append(b, esc, 6);
        } else if (c >= 0x80) {
            /* JSON is UTF-8: text from elsewhere (a provider's error page) may not be */
            size_t len = utf8_seq((const unsigned char *)s + i, n - i);
            if (len == 0) {
                rc = tg_buf_append(b, "\xef\xbf\xbd", 3); /* U+FFFD */
            } else {
                rc = tg_buf_append(b, &s[i], len);
                i += len - 1;
            }
        } else {
            rc = tg_buf_append(b, &s[i], 1);
        }
    }
    if (rc == 0)
        rc = tg_buf_append(b, "\"", 1);
    if (rc != 0)
        b->len = start;
    return rc;
}

void tg_buf_consume(tg_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->base, b->base + n, b->len - n);
    b->len -= n;
}

char *tg_buf_detach(tg_buf_t *b, size_t *len)
{
    char *p = b->base;
    if (len)
        *len = b->len;
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

bool tg_mem_caseeq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* How common a byte is in JSON and English text, roughly (0: rare). tg_memmem looks for the
 * needle's rarest byte, so that memchr stops where a match is likely: in `"usage":` that is the
 * 'g', where the leading quote would stop it at every key and string of a JSON event. */
static const unsigned char byte_freq[256] = {
    [' '] = 9, ['"'] = 9, [':'] = 8, [','] = 8, ['e'] = 8, ['t'] = 7, ['a'] = 7,  ['o'] = 7,
    ['i'] = 7, ['n'] = 7, ['s'] = 6, ['r'] = 6, ['h'] = 5, ['l'] = 5, ['d'] = 5,  ['c'] = 5,
    ['u'] = 4, ['m'] = 4, ['0'] = 4, ['1'] = 4, ['{'] = 3, ['}'] = 3, ['\n'] = 3, ['p'] = 3,
    ['f'] = 3, ['_'] = 3, ['-'] = 3, ['.'] = 3, ['2'] = 3, ['3'] = 3, ['4'] = 2,  ['5'] = 2,
    ['6'] = 2, ['7'] = 2, ['8'] = 2, ['9'] = 2, ['g'] = 2, ['w'] = 2, ['y'] = 2,  ['b'] = 2,
    ['['] = 2, [']'] = 2, ['v'] = 1, ['k'] = 1,
};

const char *tg_memmem(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return hay;
    if (hlen < nlen)
        return NULL;
    size_t at = 0; /* the needle's rarest byte: the first of the rarest, for short needles */
    for (size_t i = 1; i < nlen && i < 16; i++)
        if (byte_freq[(unsigned char)needle[i]] < byte_freq[(unsigned char)needle[at]])
            at = i;
    const char c = needle[at];
    /* candidates for needle[at] lie in [hay + at, hay + hlen - nlen + at] */
    const char *p = hay + at, *last = hay + (hlen - nlen) + at;
    while (p <= last) {
        p = memchr(p, c, (size_t)(last - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p - at, needle, nlen) == 0)
            return p - at;
        p++;
    }
    return NULL;
}

const char *tg_memrmem(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0 || hlen < nlen)
        return NULL;
    for (size_t i = hlen - nlen + 1; i-- > 0;)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0)
            return hay + i;
    return NULL;
}

int tg_buf_append_i64(tg_buf_t *b, int64_t v)
{
    char tmp[24];
    size_t k = sizeof(tmp);
    /* digits of the magnitude, negated so INT64_MIN has room */
    int64_t n = v < 0 ? v : -v;
    do {
        tmp[--k] = (char)('0' - n % 10);
        n /= 10;
    } while (n != 0);
    if (v < 0)
        tmp[--k] = '-';
    return tg_buf_append(b, tmp + k, sizeof(tmp) - k);
}

int tg_buf_append_fixed(tg_buf_t *b, int64_t v, int decimals)
{
    char tmp[48];
    size_t k = sizeof(tmp);
    int64_t n = v < 0 ? v : -v;
    for (int i = 0; i < decimals; i++) {
        tmp[--k] = (char)('0' - n % 10);
        n /= 10;
    }
    if (decimals > 0)
        tmp[--k] = '.';
    do {
        tmp[--k] = (char)('0' - n % 10);
        n /= 10;
    } while (n != 0);
    if (v < 0)
        tmp[--k] = '-';
    return tg_buf_append(b, tmp + k, sizeof(tmp) - k);
}
