/* tg_usage_event.c: the usage event's writer and reader (tg_usage_event.h); pure, any thread. The
 * reader is a small JSON scanner that keeps positions, not values, so numbers stay the text sent
 * (costs stay exact). */
#include "tg_usage_event.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_jscan.h"
#include "tg_time.h"

#include "tg_banned.h"

const char *const tg_usage_field_names[TG_UF_COUNT] = {
    "id",
    "ts",
    "request_id",
    "key_id",
    "tenant_id",
    "model",
    "provider",
    "upstream_model",
    "endpoint",
    "status",
    "streamed",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "usage_source",
    "cost_usd",
    "latency_ms",
    "ttfb_ms",
    "error",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "unpriced",
};

typedef struct jscan {
    const char *p;
    const char *end;
} jscan_t;

/* ---- reading one line: a JSON scanner that keeps positions, not values ---- */

static void skip_ws(jscan_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* At a '"': checks the string (escapes, UTF-8, no raw control characters) and records where its
 * contents are. */
static int scan_string(jscan_t *j, tg_usage_val_t *v)
{
    const unsigned char *p = (const unsigned char *)j->p + 1;
    const unsigned char *end = (const unsigned char *)j->end;
    v->type = TG_UV_STRING;
    v->p = (const char *)p;
    v->esc = v->nul = v->decoded = false;
    while (p < end) {
        unsigned c = *p;
        if (c == '"') {
            v->n = (size_t)((const char *)p - v->p);
            j->p = (const char *)p + 1;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            v->esc = true;
            if (end - p < 2)
                return -1;
            c = p[1];
            if (c == 'u') {
                long u = end - p < 6 ? -1 : tg_hex4((const char *)p + 2);
                if (u < 0)
                    return -1;
                p += 6;
                if (u == 0)
                    v->nul = true;
                if (u >= 0xDC00 && u <= 0xDFFF)
                    return -1; /* a low surrogate alone */
                if (u >= 0xD800 && u <= 0xDBFF) {
                    long lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u'
                                  ? tg_hex4((const char *)p + 2)
                                  : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return -1;
                    p += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)c) || c == 0)
                return -1;
            p += 2;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        /* no overlong forms, surrogates or past U+10FFFF: Postgres would refuse the whole COPY */
        size_t n = tg_utf8_len(p, (size_t)(end - p));
        if (n == 0)
            return -1;
        p += n;
    }
    return -1;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(jscan_t *j, tg_usage_val_t *v)
{
    const char *p = j->p, *end = j->end;
    v->type = TG_UV_NUMBER;
    v->p = p;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return -1;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return -1;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    v->n = (size_t)(p - v->p);
    j->p = p;
    return 0;
}

static int scan_literal(jscan_t *j, const char *word, enum tg_usage_vtype t, tg_usage_val_t *v)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return -1;
    v->type = t;
    v->p = j->p;
    v->n = n;
    j->p += n;
    return 0;
}

static int scan_value(jscan_t *j, tg_usage_val_t *v, int depth)
{
    skip_ws(j);
    if (j->p >= j->end)
        return -1;
    char c = *j->p;
    if (c == '"')
        return scan_string(j, v);
    if (c == '-' || (c >= '0' && c <= '9'))
        return scan_number(j, v);
    if (c == 't')
        return scan_literal(j, "true", TG_UV_TRUE, v);
    if (c == 'f')
        return scan_literal(j, "false", TG_UV_FALSE, v);
    if (c == 'n')
        return scan_literal(j, "null", TG_UV_NULL, v);
    if (c != '{' && c != '[')
        return -1;
    /* an object or array in a field we do not read: checked, then skipped */
    if (depth >= TG_USAGE_JSON_DEPTH)
        return -1;
    char close = c == '{' ? '}' : ']';
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        v->type = TG_UV_OTHER;
        return 0;
    }
    for (;;) {
        tg_usage_val_t x;
        if (close == '}') {
            skip_ws(j);
            if (j->p >= j->end || *j->p != '"' || scan_string(j, &x) != 0)
                return -1;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return -1;
            j->p++;
        }
        if (scan_value(j, &x, depth + 1) != 0)
            return -1;
        skip_ws(j);
        if (j->p >= j->end)
            return -1;
        if (*j->p == close) {
            j->p++;
            v->type = TG_UV_OTHER;
            return 0;
        }
        if (*j->p != ',')
            return -1;
        j->p++;
    }
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes a string scan_string accepted into out (room for v->n bytes: decoding never grows). */
static size_t decode_string(const tg_usage_val_t *v, char *out)
{
    if (!v->esc) {
        memcpy(out, v->p, v->n);
        return v->n;
    }
    size_t o = 0;
    for (size_t i = 0; i < v->n;) {
        char c = v->p[i];
        if (c != '\\') {
            out[o++] = c;
            i++;
            continue;
        }
        char e = v->p[i + 1];
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            out[o++] = to[strchr(from, e) - from];
            i += 2;
            continue;
        }
        unsigned cp = (unsigned)tg_hex4(v->p + i + 2); /* checked by the scan */
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo = (unsigned)tg_hex4(v->p + i + 2);
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        o += put_utf8(out + o, cp);
    }
    return o;
}

/* A short string field decoded into out[cap] (NUL-terminated); -1 if it does not fit. */
static int short_string(const tg_usage_val_t *v, char *out, size_t cap)
{
    char tmp[384];
    if (v->n > sizeof(tmp))
        return -1;
    size_t n = decode_string(v, tmp);
    if (n >= cap)
        return -1;
    memcpy(out, tmp, n);
    out[n] = '\0';
    return (int)n;
}

/* Checks an RFC 3339 date-time, copies it normalized for COPY into out ('T', 'Z') and gives its
 * unix seconds. */
static int check_ts(const char *s, size_t n, char *out, size_t *outn, long long *unix_s)
{
    int64_t t;
    if (n > 35 || !tg_rfc3339_parse(s, n, true, &t, NULL))
        return -1;
    memcpy(out, s, n);
    out[10] = 'T';
    if (out[n - 1] == 'z')
        out[n - 1] = 'Z';
    out[n] = '\0';
    *outn = n;
    *unix_s = t;
    return 0;
}

/* An integer field: absent or null is 0 (status: required); min..max. */
static int check_int(const tg_usage_val_t *v, long long min, long long max, long long *out)
{
    if (v->type != TG_UV_NUMBER || v->n > 20)
        return -1;
    for (size_t i = 0; i < v->n; i++)
        if (v->p[i] == '.' || v->p[i] == 'e' || v->p[i] == 'E')
            return -1;
    char tmp[24];
    memcpy(tmp, v->p, v->n);
    tmp[v->n] = '\0';
    errno = 0;
    long long x = strtoll(tmp, NULL, 10);
    if (errno || x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

/* A number as double; -1 when it is out of double's range (tiny values read as 0). */
static int number_value(const tg_usage_val_t *v, double *out, bool *tiny)
{
    char tmp[128];
    if (v->type != TG_UV_NUMBER || v->n >= sizeof(tmp))
        return -1;
    memcpy(tmp, v->p, v->n);
    tmp[v->n] = '\0';
    errno = 0;
    double x = strtod(tmp, NULL);
    *tiny = false;
    if (errno == ERANGE) {
        if (isinf(x))
            return -1;
        *tiny = true;
        x = 0;
    }
    *out = x;
    return 0;
}

static int reject(char *msg, size_t msgn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(char *msg, size_t msgn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msgn, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads and checks one event. Text fields with escapes are decoded into scratch (at least n
 * bytes). On failure msg says why (field names and fixed words only, never the input). */
int tg_usage_event_scan(const char *line, size_t n, tg_usage_event_t *e, char *msg, size_t msgn)
{
    jscan_t j = {line, line + n};
    memset(e->v, 0, sizeof(e->v));
    skip_ws(&j);
    if (j.p >= j.end || *j.p != '{')
        return reject(msg, msgn, "not a JSON object");
    j.p++;
    skip_ws(&j);
    bool first = true;
    while (!(j.p < j.end && *j.p == '}')) {
        if (!first) {
            if (j.p >= j.end || *j.p != ',')
                return reject(msg, msgn, "not valid JSON");
            j.p++;
            skip_ws(&j);
        }
        first = false;
        tg_usage_val_t k, v;
        if (j.p >= j.end || *j.p != '"' || scan_string(&j, &k) != 0)
            return reject(msg, msgn, "not valid JSON");
        skip_ws(&j);
        if (j.p >= j.end || *j.p != ':')
            return reject(msg, msgn, "not valid JSON");
        j.p++;
        if (scan_value(&j, &v, 1) != 0)
            return reject(msg, msgn, "not valid JSON");
        skip_ws(&j);
        char name[24];
        if (short_string(&k, name, sizeof(name)) < 0)
            continue; /* longer than any field we read */
        for (int f = 0; f < TG_UF_COUNT; f++) {
            if (strcmp(name, tg_usage_field_names[f]) != 0)
                continue;
            if (e->v[f].type != TG_UV_ABSENT)
                return reject(msg, msgn, "duplicate field \"%s\"", tg_usage_field_names[f]);
            e->v[f] = v;
            break;
        }
    }
    j.p++;
    skip_ws(&j);
    if (j.p != j.end)
        return reject(msg, msgn, "not valid JSON: text after the object");
    return 0;
}

int tg_usage_event_parse(const char *line, size_t n, int64_t now_s, char *scratch,
                         tg_usage_event_t *e, char *msg, size_t msgn)
{
    if (tg_usage_event_scan(line, n, e, msg, msgn) != 0)
        return -1;

    tg_usage_val_t *v = e->v;
    if (v[TG_UF_ID].type != TG_UV_STRING ||
        short_string(&v[TG_UF_ID], e->id, sizeof(e->id)) != 36 || !tg_usage_is_uuid(e->id))
        return reject(msg, msgn, "id is not a UUID");
    char ts[48];
    long long unix_s;
    int tsn = v[TG_UF_TS].type == TG_UV_STRING ? short_string(&v[TG_UF_TS], ts, sizeof(ts)) : -1;
    if (tsn < 0 || check_ts(ts, (size_t)tsn, e->ts, &e->ts_len, &unix_s) != 0)
        return reject(msg, msgn, "ts is not an RFC 3339 date-time");
    /* a month too far ahead would land in the default partition and block creating its own */
    if (unix_s > (long long)now_s + TG_USAGE_FUTURE_MAX_S)
        return reject(msg, msgn, "ts is more than a day ahead of the control plane's clock");
    static const enum tg_usage_field uuids[] = {TG_UF_KEY_ID, TG_UF_TENANT_ID};
    for (size_t i = 0; i < 2; i++) {
        enum tg_usage_field f = uuids[i];
        char *out = f == TG_UF_KEY_ID ? e->key_id : e->tenant_id;
        if (v[f].type == TG_UV_ABSENT || v[f].type == TG_UV_NULL)
            continue;
        if (v[f].type != TG_UV_STRING || short_string(&v[f], out, 37) != 36 ||
            !tg_usage_is_uuid(out))
            return reject(msg, msgn, "%s is neither a UUID nor null", tg_usage_field_names[f]);
    }
    long long x;
    if (check_int(&v[TG_UF_STATUS], 0, 999, &x) != 0)
        return reject(msg, msgn, "status is not an integer from 0 to 999");
    static const enum tg_usage_field tokens[] = {
        TG_UF_PROMPT_TOKENS,        TG_UF_COMPLETION_TOKENS, TG_UF_CACHED_TOKENS,
        TG_UF_REASONING_TOKENS,     TG_UF_TOTAL_TOKENS,      TG_UF_CACHE_WRITE_TOKENS,
        TG_UF_CACHE_WRITE_1H_TOKENS};
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        const tg_usage_val_t *t = &v[tokens[i]];
        if (t->type == TG_UV_ABSENT || t->type == TG_UV_NULL)
            continue;
        if (t->type == TG_UV_NUMBER && t->p[0] == '-' && check_int(t, LLONG_MIN, 0, &x) == 0 &&
            x < 0)
            return reject(msg, msgn, "%s is negative", tg_usage_field_names[tokens[i]]);
        if (check_int(t, 0, TG_USAGE_TOKENS_MAX, &x) != 0)
            return reject(msg, msgn, "%s is not an integer from 0 to %lld",
                          tg_usage_field_names[tokens[i]], TG_USAGE_TOKENS_MAX);
    }
    if (v[TG_UF_STREAMED].type != TG_UV_ABSENT && v[TG_UF_STREAMED].type != TG_UV_NULL &&
        v[TG_UF_STREAMED].type != TG_UV_TRUE && v[TG_UF_STREAMED].type != TG_UV_FALSE)
        return reject(msg, msgn, "streamed is not a boolean");
    if (v[TG_UF_UNPRICED].type != TG_UV_ABSENT && v[TG_UF_UNPRICED].type != TG_UV_NULL &&
        v[TG_UF_UNPRICED].type != TG_UV_TRUE && v[TG_UF_UNPRICED].type != TG_UV_FALSE)
        return reject(msg, msgn, "unpriced is not a boolean");

    double d;
    bool tiny;
    e->cost[0] = '0';
    e->cost[1] = '\0';
    if (v[TG_UF_COST_USD].type != TG_UV_ABSENT && v[TG_UF_COST_USD].type != TG_UV_NULL) {
        if (number_value(&v[TG_UF_COST_USD], &d, &tiny) != 0)
            return reject(msg, msgn, "cost_usd is not a number");
        if (d < 0)
            return reject(msg, msgn, "cost_usd is negative");
        if (d > TG_USAGE_COST_MAX)
            return reject(msg, msgn, "cost_usd is above %.0f", TG_USAGE_COST_MAX);
        const tg_usage_val_t *c = &v[TG_UF_COST_USD];
        bool plain = c->n < sizeof(e->cost) && !memchr(c->p, 'e', c->n) && !memchr(c->p, 'E', c->n);
        if (plain) { /* the exact text sent: numeric rounds it to the picodollar */
            memcpy(e->cost, c->p, c->n);
            e->cost[c->n] = '\0';
        } else {
            snprintf(e->cost, sizeof(e->cost), "%.12f", d);
        }
    }
    static const enum tg_usage_field reals[] = {TG_UF_LATENCY_MS, TG_UF_TTFB_MS};
    for (size_t i = 0; i < 2; i++) {
        enum tg_usage_field f = reals[i];
        char *out = f == TG_UF_LATENCY_MS ? e->latency : e->ttfb;
        out[0] = '\0';
        if (v[f].type == TG_UV_ABSENT || v[f].type == TG_UV_NULL)
            continue;
        if (number_value(&v[f], &d, &tiny) != 0)
            return reject(msg, msgn, "%s is not a number or null", tg_usage_field_names[f]);
        snprintf(out, 40, "%.17g", d);
    }
    static const enum tg_usage_field texts[] = {
        TG_UF_REQUEST_ID, TG_UF_MODEL,        TG_UF_PROVIDER, TG_UF_UPSTREAM_MODEL,
        TG_UF_ENDPOINT,   TG_UF_USAGE_SOURCE, TG_UF_ERROR};
    size_t used = 0;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        tg_usage_val_t *t = &v[texts[i]];
        if (t->type == TG_UV_ABSENT || t->type == TG_UV_NULL)
            continue;
        if (t->type != TG_UV_STRING)
            return reject(msg, msgn, "%s is not a string or null", tg_usage_field_names[texts[i]]);
        if (t->nul)
            return reject(msg, msgn, "%s contains a NUL character", tg_usage_field_names[texts[i]]);
        if (t->esc) { /* decoded bytes may need COPY escapes; raw ones never do */
            size_t dn = decode_string(t, scratch + used);
            t->p = scratch + used;
            t->n = dn;
            t->decoded = true;
            used += dn;
        }
        if (t->n > TG_USAGE_TEXT_MAX)
            return reject(msg, msgn, "%s is longer than %d bytes", tg_usage_field_names[texts[i]],
                          TG_USAGE_TEXT_MAX);
    }
    return 0;
}
/* ---- the writer ---- */

/* The record is written by hand (tg_buf_append_i64/_fixed, no printf): it is made for every
 * request on the loop thread. */
static int append_lit(tg_buf_t *out, const char *s)
{
    return tg_buf_append(out, s, strlen(s));
}

static int append_str_field(tg_buf_t *out, const char *name, const char *s, size_t n)
{
    int rc = tg_buf_append(out, ",\"", 2);
    rc = rc ? rc : append_lit(out, name);
    rc = rc ? rc : tg_buf_append(out, "\":", 2);
    if (rc != 0)
        return rc;
    if (!s)
        return tg_buf_append(out, "null", 4);
    return tg_buf_append_json_str(out, s, n);
}

/* v within [lo, hi]: the writer never writes a number the reader refuses, since a refused event
 * is lost to the accounting (an upstream may report any token count). */
static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int append_int_field(tg_buf_t *out, const char *name, int64_t v)
{
    int rc = tg_buf_append(out, ",\"", 2);
    rc = rc ? rc : append_lit(out, name);
    rc = rc ? rc : tg_buf_append(out, "\":", 2);
    return rc ? rc : tg_buf_append_i64(out, v);
}

/* Milliseconds with three decimals, rounded half away from zero. */
static int append_ms(tg_buf_t *out, double ms)
{
    double us = ms * 1000.0;
    if (!(us > -9.2e18 && us < 9.2e18)) /* NaN or past int64: not a duration we measured */
        us = 0;
    return tg_buf_append_fixed(out, (int64_t)(us < 0 ? us - 0.5 : us + 0.5), 3);
}

int tg_usage_event_append(tg_buf_t *out, const tg_usage_record_t *r)
{
    size_t start = out->len;
    char ts[32];
    tg_rfc3339_ms(r->ts_ms, ts, sizeof(ts));
    int rc = tg_buf_append(out, "{\"id\":\"", 7);
    rc = rc ? rc : append_lit(out, r->id);
    rc = rc ? rc : tg_buf_append(out, "\",\"ts\":\"", 8);
    rc = rc ? rc : append_lit(out, ts);
    rc = rc ? rc : tg_buf_append(out, "\"", 1);
    if (rc == 0)
        rc = append_str_field(out, "request_id", r->request_id, r->request_id_len);
    if (rc == 0)
        rc = append_str_field(out, "key_id", r->key_id, r->key_id ? strlen(r->key_id) : 0);
    if (rc == 0)
        rc = append_str_field(out, "tenant_id", r->tenant_id,
                              r->tenant_id ? strlen(r->tenant_id) : 0);
    if (rc == 0)
        rc = append_str_field(out, "model", r->model, r->model_len);
    if (rc == 0)
        rc = append_str_field(out, "provider", r->provider, r->provider ? strlen(r->provider) : 0);
    if (rc == 0)
        rc = append_str_field(out, "upstream_model", r->upstream_model,
                              r->upstream_model ? strlen(r->upstream_model) : 0);
    if (rc == 0)
        rc = append_str_field(out, "endpoint", r->endpoint, r->endpoint ? strlen(r->endpoint) : 0);
    rc = rc ? rc : append_int_field(out, "status", clamp(r->status, 0, 999));
    rc = rc ? rc : append_lit(out, r->streamed ? ",\"streamed\":true" : ",\"streamed\":false");
    const int64_t tmax = TG_USAGE_TOKENS_MAX;
    rc = rc ? rc : append_int_field(out, "prompt_tokens", clamp(r->prompt_tokens, 0, tmax));
    rc = rc ? rc : append_int_field(out, "completion_tokens", clamp(r->completion_tokens, 0, tmax));
    rc = rc ? rc : append_int_field(out, "cached_tokens", clamp(r->cached_tokens, 0, tmax));
    rc = rc ? rc : append_int_field(out, "reasoning_tokens", clamp(r->reasoning_tokens, 0, tmax));
    rc = rc ? rc : append_int_field(out, "total_tokens", clamp(r->total_tokens, 0, tmax));
    rc = rc ? rc : append_lit(out, ",\"usage_source\":\"");
    rc = rc ? rc : append_lit(out, r->usage_source ? r->usage_source : "none");
    rc = rc ? rc : append_lit(out, "\",\"cost_usd\":");
    rc = rc ? rc
            : tg_buf_append_fixed(
                  out, clamp(r->cost_pusd, 0, (int64_t)TG_USAGE_COST_MAX * 1000000000000LL), 12);
    rc = rc ? rc : append_lit(out, ",\"latency_ms\":");
    rc = rc ? rc : append_ms(out, r->latency_ms);
    rc = rc ? rc : append_lit(out, ",\"ttfb_ms\":");
    if (rc == 0)
        rc = r->ttfb_ms >= 0 ? append_ms(out, r->ttfb_ms) : tg_buf_append(out, "null", 4);
    if (rc == 0)
        rc = append_str_field(out, "error", r->error, r->error ? strlen(r->error) : 0);
    rc = rc ? rc : append_int_field(out, "cache_write_tokens", r->cache_write_tokens);
    rc = rc ? rc : append_int_field(out, "cache_write_1h_tokens", r->cache_write_1h_tokens);
    rc = rc ? rc : append_lit(out, r->unpriced ? ",\"unpriced\":true" : ",\"unpriced\":false");
    if (rc == 0)
        rc = tg_buf_append(out, "}\n", 2);
    if (rc != 0)
        out->len = start;
    return rc;
}

/* ---- small readers ---- */

int tg_usage_event_str(const tg_usage_event_t *e, enum tg_usage_field f, char *out, size_t cap)
{
    if (e->v[f].type != TG_UV_STRING)
        return -1;
    return short_string(&e->v[f], out, cap);
}

int tg_usage_parse_cost(const char *s, size_t n, int64_t *pusd)
{
    int64_t units = 0, frac = 0;
    size_t i = 0, nint = 0, nfrac = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, nint++) {
        if (units > (INT64_MAX / 1000000000000LL - 9) / 10)
            return TG_EINVAL; /* past what int64 picodollars hold (~9.2 million dollars) */
        units = units * 10 + (s[i] - '0');
    }
    if (nint == 0)
        return TG_EINVAL;
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, nfrac++) {
            if (nfrac == 12)
                return TG_EINVAL; /* finer than a picodollar: not ours, not exact */
            frac = frac * 10 + (s[i] - '0');
        }
        if (nfrac == 0)
            return TG_EINVAL;
    }
    if (i != n)
        return TG_EINVAL;
    for (; nfrac < 12; nfrac++)
        frac *= 10;
    *pusd = units * 1000000000000LL + frac;
    return 0;
}

bool tg_usage_is_uuid(const char *s)
{
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return s[36] == '\0';
}
