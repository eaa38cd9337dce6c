/* fit.c: see fit.h. The body scan walks bytes the request parser already validated, once, without
 * building a tree or allocating: the hot path pays one pass over the body. Loop thread only (pure
 * but for the snapshot it reads). */
#include "fit.h"

#include <stdlib.h>
#include <string.h>

#include "tg_buf.h"

#include "tg_banned.h"

/* Above any token count a request can mean; a longer number stops growing here. */
#define DP_FIT_NUM_MAX ((int64_t)1 << 40)

static bool span_is(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return p && n == l && memcmp(p, lit, l) == 0;
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* Whether a string member asks for reasoning: chat's top-level reasoning_effort, Responses'
 * reasoning.effort (any effort but "none"), /v1/messages' thinking.type (enabled, adaptive). */
static void scan_reasoning(dp_fit_need_t *need, int depth, const char *top, size_t top_len,
                           const char *key, size_t key_len, const char *s, size_t sl)
{
    if ((depth == 1 && span_is(key, key_len, "reasoning_effort")) ||
        (depth == 2 && span_is(top, top_len, "reasoning") && span_is(key, key_len, "effort")))
        need->reasoning = !span_is(s, sl, "none");
    else if (depth == 2 && span_is(top, top_len, "thinking") && span_is(key, key_len, "type"))
        need->reasoning = span_is(s, sl, "enabled") || span_is(s, sl, "adaptive");
}

void dp_fit_need_scan(dp_fit_need_t *need, const char *p, size_t n, int64_t max_tokens)
{
    memset(need, 0, sizeof(*need));
    need->max_tokens = max_tokens;
    const char *key = NULL; /* the last member name read (escaped names never match ours) */
    size_t key_len = 0;
    const char *top = NULL; /* the top-level member whose object or array is open */
    size_t top_len = 0;
    int depth = 0;
    bool after_colon = false; /* the next value is the member `key`'s */
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && p[j] != '"')
                j += p[j] == '\\' ? 2 : 1;
            const char *s = p + i + 1;
            size_t sl = (j < n ? j : n) - (i + 1);
            size_t k = skip_ws(p, n, j + 1);
            if (!after_colon && k < n && p[k] == ':') {
                key = s;
                key_len = sl;
            } else if (after_colon) {
                if (span_is(key, key_len, "type") &&
                    (span_is(s, sl, "image_url") || span_is(s, sl, "image") ||
                     span_is(s, sl, "input_image"))) {
                    need->images++;
                    need->caps |= TG_CAP_VISION;
                }
                /* an image's own bytes: a data: URL, or a base64 source's "data" */
                if (span_is(key, key_len, "data") || (sl > 5 && memcmp(s, "data:", 5) == 0))
                    need->inline_bytes += sl;
                scan_reasoning(need, depth, top, top_len, key, key_len, s, sl);
            }
            after_colon = false;
            i = j + 1;
            continue;
        }
        if (after_colon && c >= '0' && c <= '9' && depth == 2 &&
            span_is(top, top_len, "thinking") && span_is(key, key_len, "budget_tokens")) {
            int64_t v = 0;
            while (i < n && p[i] >= '0' && p[i] <= '9') {
                v = v < DP_FIT_NUM_MAX ? v * 10 + (p[i] - '0') : v; /* a bound, not a count */
                i++;
            }
            need->reasoning_budget = v;
            after_colon = false;
            continue;
        }
        if (c == ':') {
            after_colon = true;
        } else if (c == '{' || c == '[') {
            if (after_colon && depth == 1) {
                top = key;
                top_len = key_len;
            }
            /* a non-empty top-level "tools" (or the older "functions") needs tool support */
            if (c == '[' && after_colon && depth == 1 &&
                (span_is(key, key_len, "tools") || span_is(key, key_len, "functions"))) {
                size_t k = skip_ws(p, n, i + 1);
                if (k < n && p[k] != ']')
                    need->caps |= TG_CAP_TOOLS;
            }
            depth++;
            after_colon = false;
        } else if (c == '}' || c == ']') {
            depth--;
            after_colon = false;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            after_colon = false; /* a number or literal */
        }
        i++;
    }
    size_t text = n - (need->inline_bytes < n ? need->inline_bytes : n);
    need->prompt_tokens = (int64_t)((text + 3) / 4) + need->images * DP_FIT_IMAGE_TOKENS;
}

void dp_fit_init(dp_fit_t *f, int endpoint, dp_reqbody_t *rb)
{
    memset(f, 0, sizeof(*f));
    f->need.max_tokens = -1;
    if (endpoint == DP_EP_EMBEDDINGS)
        return; /* each input has its own limit, and there is no output */
    f->on = true;
    if (rb->raw) {
        dp_fit_need_scan(&f->need, rb->raw, rb->raw_len, rb->max_tokens);
        return;
    }
    /* a body only held as a tree (rare: see reqbody.h): scan its dump */
    json_t *tree = dp_reqbody_json(rb);
    char *s = tree ? json_dumps(tree, JSON_COMPACT) : NULL;
    if (s) {
        dp_fit_need_scan(&f->need, s, strlen(s), rb->max_tokens);
        free(s);
    } else {
        f->on = false;
    }
}

uint32_t dp_fit_check(const dp_fit_need_t *need, const tg_model_info_t *info)
{
    uint32_t why = 0;
    uint32_t lacks = info->caps_known & ~info->caps;
    if ((need->caps & TG_CAP_TOOLS) && (lacks & TG_CAP_TOOLS))
        why |= DP_FIT_NO_TOOLS;
    if ((need->caps & TG_CAP_VISION) && (lacks & TG_CAP_VISION))
        why |= DP_FIT_NO_VISION;
    int64_t out = need->max_tokens > 0 ? need->max_tokens : 0;
    if (info->context_window > 0 && need->prompt_tokens + out > info->context_window)
        why |= DP_FIT_CONTEXT;
    if (info->max_output_tokens > 0 && out > info->max_output_tokens)
        why |= DP_FIT_OUTPUT;
    return why;
}

bool dp_fit_ok(const dp_fit_t *f, const tg_target_t *t)
{
    return !f->on || dp_fit_check(&f->need, &t->info) == 0;
}

bool dp_fit_admit(dp_fit_t *f, const tg_target_t *t)
{
    if (!f->on)
        return true;
    uint32_t why = dp_fit_check(&f->need, &t->info);
    if (why == 0)
        return true;
    for (size_t i = 0; i < f->nrejects; i++)
        if (f->rejects[i].target == t)
            return false;
    f->why |= why;
    if (f->nrejects < DP_FIT_REJECTS_MAX) {
        f->rejects[f->nrejects].target = t;
        f->rejects[f->nrejects].why = why;
        f->nrejects++;
    }
    return false;
}

int64_t dp_fit_cost(const dp_fit_need_t *need, const tg_target_t *t)
{
    if (!t->price.set)
        return INT64_MAX;
    int64_t out = need->max_tokens > 0 ? need->max_tokens : DP_FIT_DEFAULT_OUTPUT;
    if (need->max_tokens <= 0 && t->info.max_output_tokens > 0 && t->info.max_output_tokens < out)
        out = t->info.max_output_tokens;
    /* the same rules as the answer's cost (dp_cost_of): the estimate picks the long-context tier,
     * and reasoning is priced apart where the price bills it so; nothing is guessed about cache
     * reads or writes, which a request does not announce */
    tg_cost_usage_t u = {.prompt = need->prompt_tokens, .completion = out};
    if (need->reasoning)
        u.reasoning = need->reasoning_budget > 0 && need->reasoning_budget < out
                          ? need->reasoning_budget
                          : out;
    return tg_price_usage_cost(&t->price, &u);
}

void dp_fit_order_by_cost(const dp_fit_need_t *need, const tg_route_t *rt, size_t *order)
{
    int64_t cost[64];
    size_t n = rt->ntargets < 64 ? rt->ntargets : 64;
    for (size_t i = 0; i < n; i++) {
        cost[i] = dp_fit_cost(need, &rt->targets[i]);
        order[i] = i;
    }
    /* insertion sort: stable (ties keep the route's order), and routes are short */
    for (size_t i = 1; i < n; i++) {
        size_t v = order[i], j = i;
        while (j > 0 && cost[order[j - 1]] > cost[v]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
}

/* Appends what a reason's need is, for the 400. */
static int append_reject(tg_buf_t *b, const tg_target_t *t, uint32_t why)
{
    int rc = tg_buf_appendf(b, "%s/%s", t->provider->id, t->model);
    if (rc == 0 && (why & DP_FIT_NO_TOOLS))
        rc = tg_buf_appendf(b, " has no tool support;");
    if (rc == 0 && (why & DP_FIT_NO_VISION))
        rc = tg_buf_appendf(b, " takes no images;");
    if (rc == 0 && (why & DP_FIT_CONTEXT))
        rc = tg_buf_appendf(b, " has a context window of %lld tokens;",
                            (long long)t->info.context_window);
    if (rc == 0 && (why & DP_FIT_OUTPUT))
        rc =
            tg_buf_appendf(b, " writes at most %lld tokens;", (long long)t->info.max_output_tokens);
    return rc;
}

int dp_fit_refuse(const dp_fit_t *f, const tg_route_t *rt, tg_err_t *err)
{
    tg_buf_t b = TG_BUF_INIT(sizeof(err->msg));
    int64_t out = f->need.max_tokens > 0 ? f->need.max_tokens : 0;
    int rc = tg_buf_appendf(&b, "no target of model \"%.100s\" can take this request (it needs",
                            rt->alias);
    const char *sep = " ";
    if (rc == 0 && (f->why & DP_FIT_NO_TOOLS)) {
        rc = tg_buf_appendf(&b, "%stool support", sep);
        sep = ", ";
    }
    if (rc == 0 && (f->why & DP_FIT_NO_VISION)) {
        rc = tg_buf_appendf(&b, "%simage input", sep);
        sep = ", ";
    }
    if (rc == 0 && (f->why & DP_FIT_CONTEXT)) {
        rc = tg_buf_appendf(&b, "%sa context window of about %lld tokens", sep,
                            (long long)(f->need.prompt_tokens + out));
        sep = ", ";
    }
    if (rc == 0 && (f->why & DP_FIT_OUTPUT))
        rc = tg_buf_appendf(&b, "%s%lld output tokens", sep, (long long)out);
    if (rc == 0)
        rc = tg_buf_appendf(&b, "):");
    for (size_t i = 0; rc == 0 && i < f->nrejects; i++) {
        rc = tg_buf_append(&b, " ", 1);
        if (rc == 0)
            rc = append_reject(&b, f->rejects[i].target, f->rejects[i].why);
    }
    /* a message cut at the limit still says the most important part first */
    tg_err_set(err, TG_EINVAL, 400, "%.*s",
               (int)(b.len > 0 && b.base[b.len - 1] == ';' ? b.len - 1 : b.len),
               b.base ? b.base : "no target can take this request");
    tg_buf_dispose(&b);
    /* OpenAI's code for a prompt too long, so that clients that handle it do */
    bool only_context = (f->why & ~(uint32_t)(DP_FIT_CONTEXT | DP_FIT_OUTPUT)) == 0;
    tg_err_code(err, only_context ? "context_length_exceeded" : "model_not_capable");
    err->param = (f->why & DP_FIT_NO_TOOLS) ? "tools" : "messages";
    return TG_EINVAL;
}

/* USD per token from picodollars per token, as LiteLLM writes its prices */
static int append_price(tg_buf_t *b, const char *name, int64_t pusd)
{
    int rc = tg_buf_appendf(b, ",\"%s\":", name);
    if (rc == 0)
        rc = tg_buf_append_fixed(b, pusd, 12);
    return rc;
}

int dp_fit_append_model_info(tg_buf_t *b, const tg_route_t *rt)
{
    /* LiteLLM's names, in capability-bit order (streaming usage has none there: ours) */
    static const char *const cap_fields[TG_NCAPS] = {
        "supports_function_calling", "supports_parallel_function_calling",
        "supports_vision",           "supports_response_schema",
        "supports_reasoning",        "supports_streaming_usage"};
    int64_t cw = 0, mo = 0;
    uint32_t has = 0, known_all = ~0u;
    tg_price_t hi = {0};
    bool priced = false;
    for (size_t i = 0; i < rt->ntargets; i++) {
        const tg_target_t *t = &rt->targets[i];
        cw = t->info.context_window > cw ? t->info.context_window : cw;
        mo = t->info.max_output_tokens > mo ? t->info.max_output_tokens : mo;
        has |= t->info.caps;
        known_all &= t->info.caps_known;
        if (t->price.set) {
            priced = true;
            hi.input = t->price.input > hi.input ? t->price.input : hi.input;
            hi.output = t->price.output > hi.output ? t->price.output : hi.output;
            hi.cached_input =
                t->price.cached_input > hi.cached_input ? t->price.cached_input : hi.cached_input;
        }
    }
    int rc = tg_buf_appendf(b, ",\"model_info\":{\"max_input_tokens\":");
    if (rc == 0)
        rc = cw > 0 ? tg_buf_append_i64(b, cw) : tg_buf_append(b, "null", 4);
    for (int k = 0; rc == 0 && k < 2; k++) { /* max_tokens: LiteLLM's older name of the same */
        rc = tg_buf_appendf(b, ",\"%s\":", k ? "max_tokens" : "max_output_tokens");
        if (rc == 0)
            rc = mo > 0 ? tg_buf_append_i64(b, mo) : tg_buf_append(b, "null", 4);
    }
    if (rc == 0 && priced) {
        rc = append_price(b, "input_cost_per_token", hi.input);
        if (rc == 0)
            rc = append_price(b, "output_cost_per_token", hi.output);
        if (rc == 0)
            rc = append_price(b, "cache_read_input_token_cost", hi.cached_input);
    }
    for (int i = 0; rc == 0 && i < TG_NCAPS; i++) {
        uint32_t bit = 1u << i;
        if (has & bit)
            rc = tg_buf_appendf(b, ",\"%s\":true", cap_fields[i]);
        else if (known_all & bit)
            rc = tg_buf_appendf(b, ",\"%s\":false", cap_fields[i]);
    }
    if (rc == 0)
        rc = tg_buf_append(b, "}", 1);
    return rc;
}
