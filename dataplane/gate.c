/* gate.c: see gate.h. Authentication is a SHA-256 of the presented key and one lookup in the
 * snapshot; planning reads the worker's target health; admission goes to the ledger. Loop thread
 * only. */
#include "gate.h"

#include <stdlib.h>
#include <string.h>

#include "cost.h"
#include "tg_list.h"
#include "tg_log.h"
#include "tg_time.h"

#include "tg_banned.h"

void dp_gate_init(dp_gate_t *g, dp_worker_t *w, const tg_snap_t *snap)
{
    memset(g, 0, sizeof(*g));
    g->w = w;
    g->snap = snap;
}

/* The key a request's head presents, looked up in snap: 0 with *out set, or 401. */
static int authenticate(const tg_snap_t *snap, const dp_http_msg_t *m, const tg_key_t **out,
                        tg_err_t *err)
{
    const tg_buf_t *a = &m->authorization;
    const char *key = NULL;
    size_t keylen = 0;
    if (a->len > 7 && tg_mem_caseeq(a->base, 7, "Bearer ", 7)) {
        key = a->base + 7;
        keylen = a->len - 7;
        while (keylen > 0 && *key == ' ') {
            key++;
            keylen--;
        }
    } else if (a->len > 0) {
        tg_err_set(err, TG_EAUTH, 401, "the Authorization header must be \"Bearer <key>\"");
        tg_err_code(err, "invalid_api_key");
        return TG_EAUTH;
    } else if (m->api_key.len > 0) {
        key = m->api_key.base;
        keylen = m->api_key.len;
    }
    if (!key || keylen == 0) {
        tg_err_set(err, TG_EAUTH, 401,
                   "no API key provided: send \"Authorization: Bearer <key>\" or \"x-api-key\"");
        tg_err_code(err, "invalid_api_key");
        return TG_EAUTH;
    }
    uint8_t h[TG_SHA256_LEN];
    tg_sha256(key, keylen, h);
    const tg_key_t *k = tg_snap_find_key(snap, h);
    if (!k) {
        tg_err_set(err, TG_EAUTH, 401, "incorrect API key provided");
        tg_err_code(err, "invalid_api_key");
        return TG_EAUTH;
    }
    if (k->expires_at && k->expires_at <= tg_wall_ms() / 1000) {
        tg_err_set(err, TG_EAUTH, 401, "the API key has expired");
        tg_err_code(err, "expired_api_key");
        return TG_EAUTH;
    }
    *out = k;
    return 0;
}

static bool path_is(const char *p, size_t n, const char *lit)
{
    return tg_mem_eq(p, n, lit, strlen(lit));
}

int dp_gate_head(dp_gate_t *g, const dp_http_msg_t *m, const char **allow, tg_err_t *err)
{
    const char *path;
    size_t plen;
    dp_http_path(m, &path, &plen);
    *allow = NULL;
    int ep = 0;
    if (path_is(path, plen, "/v1/chat/completions")) {
        ep = DP_EP_CHAT;
        g->endpoint_name = "chat.completions";
    } else if (path_is(path, plen, "/v1/completions")) {
        ep = DP_EP_COMPLETIONS;
        g->endpoint_name = "completions";
    } else if (path_is(path, plen, "/v1/embeddings")) {
        ep = DP_EP_EMBEDDINGS;
        g->endpoint_name = "embeddings";
    } else if (path_is(path, plen, "/v1/messages")) {
        ep = DP_EP_MESSAGES;
        g->endpoint_name = "messages";
    } else if (path_is(path, plen, "/v1/responses")) {
        ep = DP_EP_RESPONSES;
        g->endpoint_name = "responses";
    } else if (!path_is(path, plen, "/v1/models")) {
        tg_err_set(err, TG_ENOTFOUND, 404, "unknown path \"%.*s\"", (int)(plen > 200 ? 200 : plen),
                   path);
        tg_err_code(err, "unknown_url");
        return TG_ENOTFOUND;
    }
    g->endpoint = ep; /* from here, errors take the endpoint's shape (OpenAI's or Anthropic's) */
    bool is_models = ep == 0;
    if ((is_models && m->method != HTTP_GET) || (!is_models && m->method != HTTP_POST)) {
        tg_err_set(err, TG_EINVAL, 405, "use %s for this path", is_models ? "GET" : "POST");
        *allow = is_models ? "allow: GET\r\n" : "allow: POST\r\n";
        return TG_EINVAL;
    }
    if (!g->snap) {
        tg_err_set(err, TG_EUPSTREAM, 503, "the gateway has no configuration yet; retry shortly");
        return TG_EUPSTREAM;
    }
    return authenticate(g->snap, m, &g->key, err);
}

int dp_gate_key(dp_gate_t *g, const dp_http_msg_t *m, tg_err_t *err)
{
    if (!g->snap) {
        tg_err_set(err, TG_EUPSTREAM, 503, "the gateway has no configuration yet; retry shortly");
        return TG_EUPSTREAM;
    }
    return authenticate(g->snap, m, &g->key, err);
}

static uint64_t now_ms(const dp_gate_t *g)
{
    return uv_now(&g->w->loop);
}

static dp_tstate_t *target_state(dp_gate_t *g, const tg_target_t *t)
{
    return dp_health_get(g->w->health, t->provider->id, t->model);
}

/* The route's first target by its strategy, among targets with a weight whose circuit lets an
 * attempt through; a route whose weighted targets are all open starts at its first one (the plan
 * skips what is unavailable when it gets there). */
static size_t pick_first(dp_gate_t *g, const tg_route_t *rt)
{
    dp_worker_t *w = g->w;
    uint64_t now = now_ms(g);
    if (rt->ntargets == 1)
        return 0;
    bool avail[64];
    uint64_t total = 0;
    for (size_t i = 0; i < rt->ntargets; i++) {
        avail[i] = rt->targets[i].weight > 0 && dp_fit_ok(&g->fit, &rt->targets[i]) &&
                   dp_health_available(w->health, target_state(g, &rt->targets[i]), now);
        if (avail[i])
            total += rt->targets[i].weight;
    }
    if (total == 0) {
        for (size_t i = 0; i < rt->ntargets; i++)
            if (rt->targets[i].weight > 0)
                return i;
        return 0;
    }
    uint64_t rnd = tg_rand_next(&w->rand);
    /* lowest_latency explores now and then (1 in 20) so that a slow target's average can
     * recover; an unmeasured target is tried first */
    int strategy = rt->strategy;
    if (strategy == TG_STRATEGY_LOWEST_LATENCY && rnd % 20 == 0)
        strategy = TG_STRATEGY_WEIGHTED;
    if (strategy != TG_STRATEGY_WEIGHTED) {
        size_t best = SIZE_MAX;
        double best_v = 0;
        size_t start = (size_t)(rnd >> 8) % rt->ntargets; /* ties go round, not to the first */
        for (size_t k = 0; k < rt->ntargets; k++) {
            size_t i = (start + k) % rt->ntargets;
            if (!avail[i])
                continue;
            const dp_tstate_t *ts = target_state(g, &rt->targets[i]);
            double v = !ts                                  ? 0
                       : strategy == TG_STRATEGY_LEAST_BUSY ? (double)ts->inflight
                                                            : ts->ewma_ttfb_ms;
            if (strategy == TG_STRATEGY_LOWEST_LATENCY && v < 0)
                return i; /* never measured */
            if (best == SIZE_MAX || v < best_v) {
                best = i;
                best_v = v;
            }
        }
        if (best != SIZE_MAX)
            return best;
    }
    uint64_t x = rnd % total;
    for (size_t i = 0; i < rt->ntargets; i++) {
        if (!avail[i])
            continue;
        if (x < rt->targets[i].weight)
            return i;
        x -= rt->targets[i].weight;
    }
    return 0;
}

/* Room for one more plan entry: twice the room in the request's arena, up to DP_PLAN_MAX. */
static bool plan_grow(dp_gate_t *g)
{
    if (g->plan_cap >= DP_PLAN_MAX || !g->pool)
        return false;
    size_t cap = g->plan_cap * 2 > DP_PLAN_MAX ? DP_PLAN_MAX : g->plan_cap * 2;
    dp_plan_entry_t *p = tg_pool_alloc(g->pool, cap * sizeof(*p));
    if (!p)
        return false;
    memcpy(p, g->plan, g->nplan * sizeof(*p));
    g->plan = p;
    g->plan_cap = cap;
    return true;
}

static void plan_push(dp_gate_t *g, const tg_route_t *rt, const tg_target_t *t)
{
    for (size_t i = 0; i < g->nplan; i++)
        if (g->plan[i].target == t)
            return;
    if (!dp_fit_admit(&g->fit, t))
        return;
    if (g->nplan == g->plan_cap && !plan_grow(g))
        return;
    g->plan[g->nplan++] = (dp_plan_entry_t){rt, t, target_state(g, t)};
}

/* The strategy's pick, then the route's targets in their (fallback) order. */
static void plan_route(dp_gate_t *g, const tg_route_t *rt)
{
    if (rt->strategy == TG_STRATEGY_CHEAPEST) {
        /* by estimated cost; the first whose circuit is closed goes first when the request
         * runs (dp_gate_next_available), so the cheapest healthy target is tried first */
        size_t order[64];
        dp_fit_order_by_cost(&g->fit.need, rt, order);
        for (size_t i = 0; i < rt->ntargets; i++)
            plan_push(g, rt, &rt->targets[order[i]]);
        return;
    }
    size_t first = pick_first(g, rt);
    plan_push(g, rt, &rt->targets[first]);
    for (size_t i = 0; i < rt->ntargets; i++)
        plan_push(g, rt, &rt->targets[i]);
}

/* A fallback alias named by the request: honoured when it exists and the key may use it. */
static void plan_fallback(dp_gate_t *g, const char *alias, size_t n, size_t *count,
                          const char *req_id, size_t req_id_len)
{
    if (n == 0 || *count >= DP_FALLBACKS_MAX)
        return;
    const tg_route_t *rt = tg_snap_find_route(g->snap, alias, n);
    if (!rt || rt == g->route || !tg_key_allows(g->key, rt)) {
        tg_log_debug("dp_gate", "fallback_ignored", "req_id=%.*s alias=\"%.*s\"", (int)req_id_len,
                     req_id, (int)(n > 200 ? 200 : n), alias);
        return;
    }
    (*count)++;
    plan_route(g, rt);
}

/* The request's own fallbacks: "fallback_models" in the body (removed before any upstream sees
 * it) and the x-tollgate-fallbacks header (comma-separated). */
static int plan_fallbacks(dp_gate_t *g, dp_reqbody_t *body, const tg_buf_t *h, const char *req_id,
                          size_t req_id_len, tg_err_t *err)
{
    size_t count = 0;
    json_t *fm = dp_reqbody_fallback_models(body); /* owned; the upstream body omits it */
    if (fm && !json_is_null(fm)) {
        if (!json_is_array(fm) || json_array_size(fm) > DP_FALLBACKS_MAX) {
            tg_err_set(err, TG_EINVAL, 400,
                       "'fallback_models' must be an array of at most %d model names",
                       DP_FALLBACKS_MAX);
            err->param = "fallback_models";
            json_decref(fm);
            return TG_EINVAL;
        }
        size_t i;
        json_t *v;
        json_array_foreach(fm, i, v)
        {
            if (!json_is_string(v)) {
                tg_err_set(err, TG_EINVAL, 400, "'fallback_models' must hold strings");
                err->param = "fallback_models";
                json_decref(fm);
                return TG_EINVAL;
            }
        }
        json_array_foreach(fm, i, v)
        {
            plan_fallback(g, json_string_value(v), json_string_length(v), &count, req_id,
                          req_id_len);
        }
    }
    json_decref(fm);
    size_t pos = 0;
    const char *alias;
    size_t n;
    while (tg_list_next(h->base, h->len, &pos, &alias, &n))
        plan_fallback(g, alias, n, &count, req_id, req_id_len);
    return 0;
}

int dp_gate_route(dp_gate_t *g, dp_reqbody_t *body, const tg_buf_t *fallbacks, const char *req_id,
                  size_t req_id_len, tg_err_t *err)
{
    const tg_route_t *rt = tg_snap_find_route(g->snap, body->model, body->model_len);
    if (!rt) {
        tg_err_set(err, TG_ENOTFOUND, 404, "the model \"%.*s\" does not exist",
                   (int)(body->model_len > 200 ? 200 : body->model_len), body->model);
        tg_err_code(err, "model_not_found");
        err->param = "model";
        return TG_ENOTFOUND;
    }
    if (!tg_key_allows(g->key, rt)) {
        tg_err_set(err, TG_EFORBIDDEN, 403, "this API key may not use the model \"%s\"", rt->alias);
        tg_err_code(err, "model_not_allowed");
        err->param = "model";
        return TG_EFORBIDDEN;
    }
    g->route = rt;
    g->plan = g->plan_inline;
    g->nplan = 0;
    g->plan_cap = DP_PLAN_INLINE;
    dp_fit_init(&g->fit, g->endpoint, body);
    plan_route(g, rt);
    int rc = plan_fallbacks(g, body, fallbacks, req_id, req_id_len, err);
    if (rc == 0 && g->nplan == 0)
        rc = dp_fit_refuse(&g->fit, rt, err);
    return rc;
}

/* Takes out of the plan the unpriced targets whose route does not allow unpriced traffic, when
 * the key or its tenant has a budget (a budget must never let free traffic through unseen). When
 * nothing is left: 403 model_unpriced in err and TG_EFORBIDDEN; else 0. */
static int plan_drop_unpriced(dp_gate_t *g, tg_err_t *err)
{
    if (!g->key || g->nplan == 0 ||
        (!dp_ledger_has_budget(&g->key->lim) && !dp_ledger_has_budget(&g->key->tenant->lim)))
        return 0;
    const dp_plan_entry_t *first = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < g->nplan; i++) {
        const dp_plan_entry_t *e = &g->plan[i];
        if (dp_cost_unpriced(e->target) && !e->route->allow_unpriced) {
            first = first ? first : e;
            continue;
        }
        g->plan[kept++] = *e;
    }
    g->nplan = kept;
    if (kept > 0)
        return 0;
    tg_err_set(err, TG_EFORBIDDEN, 403,
               "the model \"%.200s\" has no price (\"%.128s\" on provider \"%.128s\" has no "
               "admin price and no model catalog entry) and this key or its tenant has a budget, "
               "which could not count its cost; an admin can price it, or allow unpriced "
               "traffic on the route (allow_unpriced)",
               first->route->alias, first->target->model, first->target->provider->id);
    tg_err_code(err, "model_unpriced");
    err->type = "invalid_request_error";
    err->param = "model";
    return TG_EFORBIDDEN;
}

int dp_gate_admit(dp_gate_t *g, size_t body_len, int64_t max_tokens, tg_err_t *err,
                  char *retry_after, size_t ra_len)
{
    if (ra_len > 0)
        retry_after[0] = '\0';
    int rc = plan_drop_unpriced(g, err);
    if (rc != 0)
        return rc;
    int64_t max_out = max_tokens > 0 ? max_tokens : 0;
    int64_t worst_out = g->endpoint == DP_EP_EMBEDDINGS ? 0
                        : max_out > 0                   ? max_out
                                                        : DP_WORST_COMPLETION_TOKENS;
    dp_worst_t worst = {0, (int64_t)body_len, worst_out, worst_out > 0 && max_out == 0};
    for (size_t i = 0; i < g->nplan; i++) {
        int64_t c = tg_price_cost(&g->plan[i].target->price, (int64_t)body_len, 0, worst_out);
        worst.pusd = c > worst.pusd ? c : worst.pusd;
    }
    int64_t est = dp_reqbody_estimate_prompt_tokens(body_len) + max_out;
    return dp_ledger_admit(g->key, &worst, est, &g->hold, err, retry_after, ra_len);
}

void dp_gate_release(dp_gate_t *g, int64_t cost_pusd, int64_t tokens)
{
    if (g->key)
        dp_ledger_finish(g->key, &g->hold, cost_pusd, tokens);
}

size_t dp_gate_next_available(const dp_gate_t *g, size_t from)
{
    uint64_t now = now_ms(g);
    for (size_t i = from; i < g->nplan; i++)
        if (dp_health_available(g->w->health, g->plan[i].ts, now))
            return i;
    return g->nplan;
}
