/* usage.c: usage extraction and usage records; loop thread of the request. */
#include "usage.h"

#include <inttypes.h>
#include <string.h>

#include "tg_jscan.h"
#include "tg_time.h"
#include "tg_usage_event.h"

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

void dp_usage_to_event(tg_usage_record_t *e, const dp_usage_t *u)
{
    e->prompt_tokens = u->prompt;
    e->completion_tokens = u->completion;
    e->cached_tokens = u->cached;
    e->reasoning_tokens = u->reasoning;
    e->total_tokens = u->total;
    e->cache_write_tokens = u->cache_write;
    e->cache_write_1h_tokens = u->cache_write_1h;
}

/* key_id or tenant_id: "" when null or absent */
static int copy_id(const tg_usage_event_t *e, enum tg_usage_field f, char *out, size_t cap)
{
    int t = e->v[f].type;
    if (t == TG_UV_ABSENT || t == TG_UV_NULL) {
        out[0] = '\0';
        return 0;
    }
    return tg_usage_event_str(e, f, out, cap) > 0 ? 0 : TG_EINVAL;
}

int dp_usage_line_parse(const char *line, size_t n, dp_usage_line_t *out)
{
    tg_usage_event_t e;
    char msg[96];
    if (tg_usage_event_scan(line, n, &e, msg, sizeof(msg)) != 0)
        return TG_EINVAL;
    if (tg_usage_event_str(&e, TG_UF_ID, out->id, sizeof(out->id)) != 36 ||
        copy_id(&e, TG_UF_KEY_ID, out->key_id, sizeof(out->key_id)) != 0 ||
        copy_id(&e, TG_UF_TENANT_ID, out->tenant_id, sizeof(out->tenant_id)) != 0)
        return TG_EINVAL;
    /* the cost as the digits sent, not as a double */
    const tg_usage_val_t *c = &e.v[TG_UF_COST_USD];
    if (c->type != TG_UV_NUMBER)
        return TG_EINVAL;
    return tg_usage_parse_cost(c->p, c->n, &out->cost_pusd);
}
