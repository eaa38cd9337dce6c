/* tg_jscan.c: the validating JSON scanner; pure, any thread. One pass, no recursion: a stack of
 * open containers (at most JSON_PARSER_MAX_DEPTH, like jansson) and a stack of the keys of the
 * open objects, checked for duplicates when each object closes. */
#include "tg_jscan.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tg_buf.h"

#include "tg_banned.h"

#define MAX_DEPTH JSON_PARSER_MAX_DEPTH
#define SMALL_KEYS 64
#define PAIRWISE_MAX 8 /* objects with more keys are sorted by hash instead */
#define OBJ_BIT 0x80000000u

typedef struct jkey {
    const char *p;
    size_t n;
    uint32_t hash; /* of the decoded bytes */
    bool esc;
} jkey_t;

typedef struct jscan {
    const unsigned char *p;
    size_t n;
    jkey_t small[SMALL_KEYS];
    jkey_t *keys; /* small, or owned when it outgrew it */
    size_t nkeys, capkeys;
    uint32_t frame[MAX_DEPTH + 1]; /* index of the frame's first key | OBJ_BIT for objects */
    size_t nframes;
    int flags;
} jscan_t;

static int hexval(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

long tg_hex4(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

size_t tg_utf8_len(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    size_t n;
    unsigned long min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    unsigned long cp = c & (0xFFu >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* At the opening quote *i; on success *i is past the closing quote. */
static int scan_string(const unsigned char *p, size_t n, size_t *i, bool *esc)
{
    size_t k = *i + 1;
    *esc = false;
    for (;;) {
        /* the common case: printable ASCII */
        while (k < n && p[k] >= 0x20 && p[k] < 0x80 && p[k] != '"' && p[k] != '\\')
            k++;
        if (k >= n)
            return TG_EINVAL;
        unsigned c = p[k];
        if (c == '"') {
            *i = k + 1;
            return 0;
        }
        if (c < 0x20)
            return TG_EINVAL;
        if (c == '\\') {
            *esc = true;
            if (n - k < 2)
                return TG_EINVAL;
            c = p[k + 1];
            if (c != 'u') {
                if (!(c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                      c == 'r' || c == 't'))
                    return TG_EINVAL;
                k += 2;
                continue;
            }
            long u = n - k >= 6 ? tg_hex4((const char *)p + k + 2) : -1;
            if (u < 0)
                return TG_EINVAL;
            k += 6;
            if (u == 0)
                return TG_EINVAL; /* jansson refuses \u0000 without JSON_ALLOW_NUL */
            if (u >= 0xDC00 && u <= 0xDFFF)
                return TG_EINVAL; /* a low surrogate alone */
            if (u >= 0xD800 && u <= 0xDBFF) {
                long lo = n - k >= 6 && p[k] == '\\' && p[k + 1] == 'u'
                              ? tg_hex4((const char *)p + k + 2)
                              : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return TG_EINVAL;
                k += 6;
            }
            continue;
        }
        size_t m = tg_utf8_len(p + k, n - k);
        if (m == 0)
            return TG_EINVAL;
        k += m;
    }
}

static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

/* A real that strtod would turn into +-HUGE_VAL (jansson: "real number overflow"). Decided from
 * the decimal magnitude; only the band next to DBL_MAX asks strtod. */
static int real_overflows(const unsigned char *s, size_t n, size_t int_start, size_t int_end,
                          size_t frac_start, size_t frac_end, int64_t exp)
{
    int64_t mag;
    if (!(int_end - int_start == 1 && s[int_start] == '0')) {
        mag = (int64_t)(int_end - int_start) - 1 + exp;
    } else {
        size_t k = frac_start;
        while (k < frac_end && s[k] == '0')
            k++;
        if (k == frac_end)
            return 0; /* zero */
        mag = -(int64_t)(k - frac_start) - 1 + exp;
    }
    if (mag < 308)
        return 0;
    if (mag > 308)
        return 1;
    char *copy = malloc(n + 1);
    if (!copy)
        return TG_ENOMEM;
    memcpy(copy, s, n);
    copy[n] = '\0';
    errno = 0;
    double d = strtod(copy, NULL);
    int over = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
    free(copy);
    return over;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? within jansson's ranges. */
static int scan_number(const unsigned char *p, size_t n, size_t *i, bool *integer)
{
    size_t k = *i, start = k;
    bool neg = false;
    if (p[k] == '-') {
        neg = true;
        k++;
    }
    size_t int_start = k;
    if (k >= n || !is_digit(p[k]))
        return TG_EINVAL;
    if (p[k] == '0') {
        k++;
        if (k < n && is_digit(p[k]))
            return TG_EINVAL;
    } else {
        while (k < n && is_digit(p[k]))
            k++;
    }
    size_t int_end = k, frac_start = k, frac_end = k;
    *integer = true;
    if (k < n && p[k] == '.') {
        *integer = false;
        k++;
        frac_start = k;
        if (k >= n || !is_digit(p[k]))
            return TG_EINVAL;
        while (k < n && is_digit(p[k]))
            k++;
        frac_end = k;
    }
    int64_t exp = 0;
    if (k < n && (p[k] == 'e' || p[k] == 'E')) {
        *integer = false;
        k++;
        bool eneg = false;
        if (k < n && (p[k] == '+' || p[k] == '-')) {
            eneg = p[k] == '-';
            k++;
        }
        if (k >= n || !is_digit(p[k]))
            return TG_EINVAL;
        while (k < n && is_digit(p[k])) {
            if (exp < 100000000)
                exp = exp * 10 + (p[k] - '0');
            k++;
        }
        if (eneg)
            exp = -exp;
    }
    *i = k;
    if (*integer) {
        /* strtoll's range: 19 digits at most, compared as text at 19 */
        size_t nd = int_end - int_start;
        if (nd < 19)
            return 0;
        if (nd > 19)
            return TG_EINVAL;
        const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
        return memcmp(p + int_start, lim, 19) <= 0 ? 0 : TG_EINVAL;
    }
    int o = real_overflows(p + start, k - start, int_start - start, int_end - start,
                           frac_start - start, frac_end - start, exp);
    return o < 0 ? o : o ? TG_EINVAL : 0;
}

/* ---- decoded string bytes, one at a time ---- */

typedef struct jit {
    const unsigned char *p, *end;
    unsigned char buf[4];
    int bi, bn;
} jit_t;

static int jit_next(jit_t *it)
{
    if (it->bi < it->bn)
        return it->buf[it->bi++];
    if (it->p >= it->end)
        return -1;
    unsigned c = *it->p;
    if (c != '\\') {
        it->p++;
        return (int)c;
    }
    c = it->p[1];
    if (c != 'u') {
        it->p += 2;
        switch (c) {
        case 'b':
            return '\b';
        case 'f':
            return '\f';
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        default:
            return (int)c; /* " \ / */
        }
    }
    unsigned long cp = (unsigned long)tg_hex4((const char *)it->p + 2);
    it->p += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned long lo = (unsigned long)tg_hex4((const char *)it->p + 2);
        it->p += 6;
        cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
    }
    if (cp < 0x80) {
        return (int)cp;
    } else if (cp < 0x800) {
        it->buf[0] = (unsigned char)(0xC0 | (cp >> 6));
        it->buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
        it->bn = 2;
    } else if (cp < 0x10000) {
        it->buf[0] = (unsigned char)(0xE0 | (cp >> 12));
        it->buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        it->buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
        it->bn = 3;
    } else {
        it->buf[0] = (unsigned char)(0xF0 | (cp >> 18));
        it->buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        it->buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        it->buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
        it->bn = 4;
    }
    it->bi = 1;
    return it->buf[0];
}

static void jit_init(jit_t *it, const char *s, size_t n)
{
    it->p = (const unsigned char *)s;
    it->end = it->p + n;
    it->bi = it->bn = 0;
}

bool tg_jstr_eq(const char *s, size_t slen, bool escaped, const char *lit, size_t n)
{
    if (!escaped)
        return tg_mem_eq(s, slen, lit, n);
    jit_t it;
    jit_init(&it, s, slen);
    for (size_t k = 0; k < n; k++) {
        if (jit_next(&it) != (unsigned char)lit[k])
            return false;
    }
    return jit_next(&it) < 0;
}

size_t tg_jstr_decode(const char *s, size_t slen, char *out, size_t cap)
{
    jit_t it;
    jit_init(&it, s, slen);
    size_t k = 0;
    int c;
    while ((c = jit_next(&it)) >= 0) {
        if (k == cap)
            return (size_t)-1;
        out[k++] = (char)c;
    }
    return k;
}

int64_t tg_jint(const tg_jmember_t *m)
{
    const char *s = m->val, *end = m->val + m->val_len;
    bool neg = s < end && *s == '-';
    if (neg)
        s++;
    /* accumulate negatively: INT64_MIN has no positive twin */
    int64_t v = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++)
        v = v * 10 - (*s - '0');
    return neg ? v : -v;
}

static size_t skip_ws(const unsigned char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

bool tg_jempty(const char *val, size_t n)
{
    size_t i = skip_ws((const unsigned char *)val, n, 1);
    return i < n && (val[i] == ']' || val[i] == '}');
}

/* ---- duplicate keys ---- */

static uint32_t key_hash(const char *s, size_t n, bool esc)
{
    uint32_t h = 2166136261u;
    if (!esc) {
        for (size_t k = 0; k < n; k++)
            h = (h ^ (unsigned char)s[k]) * 16777619u;
        return h;
    }
    jit_t it;
    jit_init(&it, s, n);
    int c;
    while ((c = jit_next(&it)) >= 0)
        h = (h ^ (unsigned)c) * 16777619u;
    return h;
}

static bool key_eq(const jkey_t *a, const jkey_t *b)
{
    if (a->hash != b->hash)
        return false;
    if (!a->esc && !b->esc)
        return tg_mem_eq(a->p, a->n, b->p, b->n);
    jit_t x, y;
    jit_init(&x, a->p, a->n);
    jit_init(&y, b->p, b->n);
    for (;;) {
        int c = jit_next(&x);
        if (c != jit_next(&y))
            return false;
        if (c < 0)
            return true;
    }
}

static int by_hash(const void *a, const void *b)
{
    uint32_t x = ((const jkey_t *)a)->hash, y = ((const jkey_t *)b)->hash;
    return x < y ? -1 : x > y;
}

static bool has_duplicate(jkey_t *k, size_t n)
{
    if (n <= PAIRWISE_MAX) {
        for (size_t a = 1; a < n; a++)
            for (size_t b = 0; b < a; b++)
                if (key_eq(&k[a], &k[b]))
                    return true;
        return false;
    }
    qsort(k, n, sizeof(*k), by_hash);
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0 && k[b - 1].hash == k[a].hash; b--)
            if (key_eq(&k[a], &k[b - 1]))
                return true;
    return false;
}

static int push_key(jscan_t *s, const char *p, size_t n, bool esc)
{
    if (s->nkeys == s->capkeys) {
        size_t cap = s->capkeys * 2;
        jkey_t *k = malloc(cap * sizeof(*k));
        if (!k)
            return TG_ENOMEM;
        memcpy(k, s->keys, s->nkeys * sizeof(*k));
        if (s->keys != s->small)
            free(s->keys);
        s->keys = k;
        s->capkeys = cap;
    }
    s->keys[s->nkeys++] = (jkey_t){p, n, key_hash(p, n, esc), esc};
    return 0;
}

/* ---- the scan ---- */

static int scan(jscan_t *s, int *top, tg_jscan_member_fn on_member, void *ud)
{
    const unsigned char *p = s->p;
    size_t n = s->n;
    size_t i = skip_ws(p, n, 0);
    if (i >= n || (p[i] != '{' && p[i] != '['))
        return TG_EINVAL;
    *top = p[i];
    tg_jmember_t m = {0};
    bool pending = false; /* a top-level member's key is read, its value not finished */
    int rc;
    bool esc;
value:
    i = skip_ws(p, n, i);
    if (i >= n || s->nframes + 1 > MAX_DEPTH)
        return TG_EINVAL;
    if (pending && s->nframes == 1)
        m.val = (const char *)p + i;
    int type;
    bool integer = false;
    switch (p[i]) {
    case '{':
    case '[': {
        bool obj = p[i] == '{';
        s->frame[s->nframes++] = (uint32_t)s->nkeys | (obj ? OBJ_BIT : 0);
        if (pending && s->nframes == 2)
            m.type = obj ? TG_JOBJECT : TG_JARRAY;
        i = skip_ws(p, n, i + 1);
        if (i < n && p[i] == (obj ? '}' : ']')) {
            i++;
            s->nframes--;
            goto after_value;
        }
        if (obj)
            goto key;
        goto value;
    }
    case '"':
        rc = scan_string(p, n, &i, &esc);
        type = TG_JSTRING;
        break;
    case 't':
        rc = n - i >= 4 && memcmp(p + i, "true", 4) == 0 ? 0 : TG_EINVAL;
        i += 4;
        type = TG_JTRUE;
        break;
    case 'f':
        rc = n - i >= 5 && memcmp(p + i, "false", 5) == 0 ? 0 : TG_EINVAL;
        i += 5;
        type = TG_JFALSE;
        break;
    case 'n':
        rc = n - i >= 4 && memcmp(p + i, "null", 4) == 0 ? 0 : TG_EINVAL;
        i += 4;
        type = TG_JNULL;
        break;
    default:
        if (p[i] != '-' && !is_digit(p[i]))
            return TG_EINVAL;
        rc = scan_number(p, n, &i, &integer);
        type = TG_JNUMBER;
        break;
    }
    if (rc != 0)
        return rc;
    if (pending && s->nframes == 1) {
        m.type = type;
        m.integer = integer;
    }
after_value:
    if (pending && s->nframes == 1) {
        pending = false;
        m.val_len = (size_t)((const char *)p + i - m.val);
        if (on_member) {
            rc = on_member(ud, &m);
            if (rc != 0)
                return rc;
        }
    }
    i = skip_ws(p, n, i);
    if (s->nframes == 0)
        return i == n ? 0 : TG_EINVAL;
    if (i >= n)
        return TG_EINVAL;
    uint32_t f = s->frame[s->nframes - 1];
    bool obj = (f & OBJ_BIT) != 0;
    if (p[i] == ',') {
        i = skip_ws(p, n, i + 1);
        if (obj)
            goto key;
        goto value;
    }
    if (p[i] != (obj ? '}' : ']'))
        return TG_EINVAL;
    i++;
    if (obj) {
        size_t base = f & ~OBJ_BIT;
        if (!(s->flags & TG_JSCAN_ANY_DUPLICATES) && has_duplicate(s->keys + base, s->nkeys - base))
            return TG_EINVAL;
        s->nkeys = base;
    }
    s->nframes--;
    goto after_value;
key:
    if (i >= n || p[i] != '"')
        return TG_EINVAL;
    {
        size_t ks = i;
        rc = scan_string(p, n, &i, &esc);
        if (rc != 0)
            return rc;
        const char *k = (const char *)p + ks + 1;
        size_t kn = i - ks - 2;
        rc = s->flags & TG_JSCAN_ANY_DUPLICATES ? 0 : push_key(s, k, kn, esc);
        if (rc != 0)
            return rc;
        if (s->nframes == 1) {
            pending = true;
            m.key = k;
            m.key_len = kn;
            m.key_escaped = esc;
            m.start = ks;
        }
    }
    i = skip_ws(p, n, i);
    if (i >= n || p[i] != ':')
        return TG_EINVAL;
    i++;
    goto value;
}

int tg_jscan(const char *p, size_t n, int *top, tg_jscan_member_fn on_member, void *ud)
{
    return tg_jscan_ex(p, n, 0, top, on_member, ud);
}

int tg_jscan_ex(const char *p, size_t n, int flags, int *top, tg_jscan_member_fn on_member,
                void *ud)
{
    jscan_t st; /* ~10 KiB of stack: no allocation for the common body */
    jscan_t *s = &st;
    s->p = (const unsigned char *)p;
    s->n = n;
    s->keys = s->small;
    s->nkeys = 0;
    s->capkeys = SMALL_KEYS;
    s->nframes = 0;
    s->flags = flags;
    int t = 0;
    int rc = scan(s, &t, on_member, ud);
    if (top)
        *top = t;
    if (s->keys != s->small)
        free(s->keys);
    return rc;
}

int tg_jscan_members(const char *p, size_t n, tg_jscan_member_fn on_member, void *ud)
{
    int top;
    return tg_jscan_ex(p, n, TG_JSCAN_ANY_DUPLICATES, &top, on_member, ud);
}
