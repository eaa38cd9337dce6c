/* usage.c: usage extraction and usage records; loop thread of the request. */
#include "usage.h"

#include <inttypes.h>
#include <string.h>

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

bool dp_usage_scan(dp_usage_t *u, const char *body, size_t n)
{
    /* usage is the last member in OpenAI's bodies, so search from the end */
    const char *k = tg_memrmem(body, n, "\"usage\"", 7);
    if (k) {
        const char *p = k + 7;
        const char *end = body + n;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        if (p < end && *p == ':') {
            p++;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
            if (p < end && *p == '{') {
                json_t *o = json_loadb(p, (size_t)(end - p), JSON_DISABLE_EOF_CHECK, NULL);
                bool ok = dp_usage_from_json(u, o);
                json_decref(o);
                if (ok)
                    return true;
            }
        }
    }
    /* unusual layout: parse the whole body */
    json_t *root = json_loadb(body, n, 0, NULL);
    bool ok = root && dp_usage_from_json(u, json_object_get(root, "usage"));
    json_decref(root);
    return ok;
}

static int append_str_field(tg_buf_t *out, const char *name, const char *s, size_t n)
{
    int rc = tg_buf_appendf(out, ",\"%s\":", name);
    if (rc != 0)
        return rc;
    if (!s)
        return tg_buf_append(out, "null", 4);
    return tg_buf_append_json_str(out, s, n);
}

int dp_usage_record_append(tg_buf_t *out, const dp_usage_record_t *r)
{
    size_t start = out->len;
    char ts[32];
    tg_rfc3339_ms(r->ts_ms, ts, sizeof(ts));
    int rc = tg_buf_appendf(out, "{\"id\":\"%s\",\"ts\":\"%s\"", r->id, ts);
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
    if (rc == 0)
        rc = tg_buf_appendf(out,
                            ",\"status\":%d,\"streamed\":%s,\"prompt_tokens\":%" PRId64
                            ",\"completion_tokens\":%" PRId64 ",\"cached_tokens\":%" PRId64
                            ",\"reasoning_tokens\":%" PRId64 ",\"total_tokens\":%" PRId64
                            ",\"usage_source\":\"%s\",\"cost_usd\":%" PRId64 ".%012" PRId64
                            ",\"latency_ms\":%.3f,\"ttfb_ms\":",
                            r->status, r->streamed ? "true" : "false", r->usage.prompt,
                            r->usage.completion, r->usage.cached, r->usage.reasoning,
                            r->usage.total, r->usage_source ? r->usage_source : "none",
                            (int64_t)(r->cost_pusd / 1000000000000LL),
                            (int64_t)(r->cost_pusd % 1000000000000LL), r->latency_ms);
    if (rc == 0)
        rc = r->ttfb_ms >= 0 ? tg_buf_appendf(out, "%.3f", r->ttfb_ms)
                             : tg_buf_append(out, "null", 4);
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
