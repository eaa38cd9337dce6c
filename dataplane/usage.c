/* usage.c: usage extraction and usage records; loop thread of the request. */
#include "usage.h"

#include <inttypes.h>
#include <string.h>

#include "tg_jscan.h"
#include "tg_time.h"

#include "tg_banned.h"

static int64_t int_member(const json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

bool dp_usage_from_json(dp_usage_t *u, const json_t *obj)
{
    if (!json_is_object(obj))
        return false;
    memset(u, 0, sizeof(*u));
    u->prompt = int_member(obj, "prompt_tokens");
    u->completion = int_member(obj, "completion_tokens");
    u->total = int_member(obj, "total_tokens");
    u->cached = int_member(json_object_get(obj, "prompt_tokens_details"), "cached_tokens");
    u->reasoning =
        int_member(json_object_get(obj, "completion_tokens_details"), "reasoning_tokens");
    /* the counts come from the provider: saturate rather than overflow */
    if (u->total == 0 && __builtin_add_overflow(u->prompt, u->completion, &u->total))
        u->total = INT64_MAX;
    u->present = true;
    return true;
}

/* ---- usage read by the scanner: no tree ---- */

typedef struct usage_scan {
    dp_usage_t *u;
    int64_t *detail; /* the member read inside a *_details object */
    const char *detail_name;
    size_t detail_len;
} usage_scan_t;

static int64_t count_of(const tg_jmember_t *m)
{
    if (m->type != TG_JNUMBER || !m->integer)
        return 0;
    int64_t v = tg_jint(m);
    return v > 0 ? v : 0;
}

static int on_detail(void *ud, const tg_jmember_t *m)
{
    usage_scan_t *s = ud;
    if (tg_jstr_eq(m->key, m->key_len, m->key_escaped, s->detail_name, s->detail_len))
        *s->detail = count_of(m);
    return 0;
}

static int on_usage_member(void *ud, const tg_jmember_t *m)
{
    usage_scan_t *s = ud;
    dp_usage_t *u = s->u;
#define KEY_IS(lit) tg_jstr_eq(m->key, m->key_len, m->key_escaped, lit, sizeof(lit) - 1)
    if (KEY_IS("prompt_tokens")) {
        u->prompt = count_of(m);
    } else if (KEY_IS("completion_tokens")) {
        u->completion = count_of(m);
    } else if (KEY_IS("total_tokens")) {
        u->total = count_of(m);
    } else if (m->type == TG_JOBJECT && KEY_IS("prompt_tokens_details")) {
        usage_scan_t d = {u, &u->cached, "cached_tokens", 13};
        u->cached = 0;
        return tg_jscan_members(m->val, m->val_len, on_detail, &d);
    } else if (m->type == TG_JOBJECT && KEY_IS("completion_tokens_details")) {
        usage_scan_t d = {u, &u->reasoning, "reasoning_tokens", 16};
        u->reasoning = 0;
        return tg_jscan_members(m->val, m->val_len, on_detail, &d);
    }
#undef KEY_IS
    return 0;
}

bool dp_usage_from_span(dp_usage_t *u, const char *obj, size_t n)
{
    if (n == 0 || obj[0] != '{')
        return false;
    memset(u, 0, sizeof(*u));
    usage_scan_t s = {u, NULL, NULL, 0};
    if (tg_jscan_members(obj, n, on_usage_member, &s) != 0)
        return false;
    /* the counts come from the provider: saturate rather than overflow */
    if (u->total == 0 && __builtin_add_overflow(u->prompt, u->completion, &u->total))
        u->total = INT64_MAX;
    u->present = true;
    return true;
}

typedef struct top_usage {
    const char *val; /* the last top-level "usage" member's value (last one wins, as jansson) */
    size_t len;
    int type;
} top_usage_t;

static int on_top_member(void *ud, const tg_jmember_t *m)
{
    top_usage_t *t = ud;
    if (tg_jstr_eq(m->key, m->key_len, m->key_escaped, "usage", 5)) {
        t->val = m->val;
        t->len = m->val_len;
        t->type = m->type;
    }
    return 0;
}

bool dp_usage_scan(dp_usage_t *u, const char *body, size_t n)
{
    /* one pass of the scanner over the whole answer finds the top-level member exactly (a
     * "usage" in a string or a nested object is not it) and builds nothing */
    top_usage_t t = {NULL, 0, 0};
    int top;
    if (tg_jscan_ex(body, n, TG_JSCAN_ANY_DUPLICATES, &top, on_top_member, &t) != 0 ||
        t.type != TG_JOBJECT)
        return false;
    return dp_usage_from_span(u, t.val, t.len);
}

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

int dp_usage_record_append(tg_buf_t *out, const dp_usage_record_t *r)
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
    rc = rc ? rc : append_int_field(out, "status", r->status);
    rc = rc ? rc : append_lit(out, r->streamed ? ",\"streamed\":true" : ",\"streamed\":false");
    rc = rc ? rc : append_int_field(out, "prompt_tokens", r->usage.prompt);
    rc = rc ? rc : append_int_field(out, "completion_tokens", r->usage.completion);
    rc = rc ? rc : append_int_field(out, "cached_tokens", r->usage.cached);
    rc = rc ? rc : append_int_field(out, "reasoning_tokens", r->usage.reasoning);
    rc = rc ? rc : append_int_field(out, "total_tokens", r->usage.total);
    rc = rc ? rc : append_lit(out, ",\"usage_source\":\"");
    rc = rc ? rc : append_lit(out, r->usage_source ? r->usage_source : "none");
    rc = rc ? rc : append_lit(out, "\",\"cost_usd\":");
    rc = rc ? rc : tg_buf_append_fixed(out, r->cost_pusd, 12);
    rc = rc ? rc : append_lit(out, ",\"latency_ms\":");
    rc = rc ? rc : append_ms(out, r->latency_ms);
    rc = rc ? rc : append_lit(out, ",\"ttfb_ms\":");
    if (rc == 0)
        rc = r->ttfb_ms >= 0 ? append_ms(out, r->ttfb_ms) : tg_buf_append(out, "null", 4);
    if (rc == 0)
        rc = append_str_field(out, "error", r->error, r->error ? strlen(r->error) : 0);
    if (rc == 0)
        rc = tg_buf_append(out, "}\n", 2);
    if (rc != 0)
        out->len = start;
    return rc;
}

int dp_usage_parse_cost(const char *s, size_t n, int64_t *pusd)
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

static int copy_id(const json_t *v, char *out, size_t cap)
{
    if (json_is_null(v) || !v) {
        out[0] = '\0';
        return 0;
    }
    size_t n = json_string_length(v);
    if (!json_is_string(v) || n == 0 || n >= cap)
        return TG_EINVAL;
    memcpy(out, json_string_value(v), n);
    out[n] = '\0';
    return 0;
}

int dp_usage_line_parse(const char *line, size_t n, dp_usage_line_t *out)
{
    int rc = TG_EINVAL;
    json_t *j = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j))
        goto out;
    json_t *id = json_object_get(j, "id");
    if (!json_is_string(id) || json_string_length(id) != 36)
        goto out;
    memcpy(out->id, json_string_value(id), 37);
    if (copy_id(json_object_get(j, "key_id"), out->key_id, sizeof(out->key_id)) != 0 ||
        copy_id(json_object_get(j, "tenant_id"), out->tenant_id, sizeof(out->tenant_id)) != 0)
        goto out;
    /* jansson would hand the cost over as a double; read its digits instead. The line is valid
     * JSON with no nested objects, and a quote inside a string is escaped, so the only place
     * this text can occur is the member itself. */
    const char *k = tg_memmem(line, n, "\"cost_usd\":", 11);
    if (!k)
        goto out;
    const char *v = k + 11, *end = line + n, *e = v;
    while (e < end && *e != ',' && *e != '}')
        e++;
    rc = dp_usage_parse_cost(v, (size_t)(e - v), &out->cost_pusd);
out:
    json_decref(j);
    return rc;
}
