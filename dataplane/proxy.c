/* proxy.c: one request from parse to usage record: routes the path, authenticates the key,
 * resolves the model alias to a plan of targets (the strategy's pick first, then the route's other
 * targets in order, then the fallback aliases the request names), and runs attempts down that plan
 * with retries, backoff and circuit breakers until one answers; relays the answer (buffered or
 * streamed, translated by xlate.c) and records what it cost. A request owns its parsed message,
 * its curl handle and its buffers, and holds a snapshot ref for its whole life, so a reload never
 * changes config under it. Loop thread only. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "dp.h"
#include "ledger.h"
#include "metrics.h"
#include "reqbody.h"
#include "tg_log.h"
#include "tg_time.h"
#include "upstream.h"
#include "usage.h"
#include "usage_sink.h"
#include "xlate.h"

#include "tg_banned.h"

#define USAGE_BATCH_MAX 1000
#define PLAN_MAX 32                 /* targets one request may try, fallbacks included */
#define FALLBACKS_MAX 4             /* aliases a request may name */
#define ATTEMPTS_MAX 20             /* upstream attempts one request may make */
#define BACKOFF_CAP_MS 10000        /* longest wait before a retry; a longer retry-after moves on */
#define CACHE_STREAM_MAX (1u << 20) /* a longer streamed answer is not cached */

enum {
    DP_REQ_UPSTREAM = 0, /* waiting for the provider */
    DP_REQ_STREAMING,    /* relaying events */
    DP_REQ_BACKOFF,      /* waiting to retry */
    DP_REQ_DONE,
};

typedef struct plan_entry {
    const tg_route_t *route; /* whose retry policy and timeouts apply */
    const tg_target_t *target;
    dp_tstate_t *ts; /* the target's health on this worker, looked up once; NULL = untracked */
} plan_entry_t;

struct dp_req {
    dp_upstream_xfer_t xfer; /* first: CURLOPT_PRIVATE points here */
    dp_worker_t *w;
    dp_conn_t *conn; /* NULL once the client is gone */
    tg_snap_t *snap; /* one ref, for the request's whole life */
    dp_http_msg_t msg;
    int endpoint;
    const char *endpoint_name;
    dp_reqbody_t body;
    size_t body_len;
    const tg_key_t *key;
    const tg_route_t *route; /* the alias the client asked for */
    plan_entry_t plan[PLAN_MAX];
    size_t nplan;
    size_t pos;                /* the plan entry being tried */
    const tg_target_t *target; /* the current attempt's target */
    dp_tstate_t *ts;           /* its health, or NULL */
    uint32_t attempts;         /* upstream attempts started */
    uint32_t tries;            /* of them on the current target */
    dp_xlate_t x;
    bool x_ready;
    CURL *easy;
    struct curl_slist *headers;
    tg_buf_t url;
    tg_buf_t up_body;
    tg_buf_t resp; /* a non-streamed answer, or a streamed request's non-stream answer */
    tg_buf_t out;  /* client bytes produced from one upstream read */
    long up_status;
    bool up_stream;
    bool stream_started;
    bool paused;
    bool too_large;
    int state;
    uv_timer_t timer; /* backoff, first-byte and idle deadlines */
    bool timer_init;
    uint64_t t_start;
    uint64_t t_attempt;    /* mono us when the current attempt started */
    uint64_t t_first;      /* mono us of the current attempt's first byte, 0 = none yet */
    uint64_t attempt_ms;   /* loop ms when the current attempt started */
    uint64_t last_byte_ms; /* loop ms of its last byte */
    bool async;            /* dp_proxy_handle has returned the request to its connection */
    char retry_after[32];
    dp_admit_t adm;   /* what admission holds for this request (rate limits, budgets) */
    bool cache_on;    /* the route caches and the client allows reading or storing */
    bool cache_store; /* store this answer (2xx, complete, not refused by no-store) */
    uint8_t cache_key[TG_SHA256_LEN];
    tg_buf_t cache_buf;          /* a streamed answer's client bytes, to store at its end */
    const dp_cache_entry_t *hit; /* borrowed while a cached answer is served */
    char req_id[132];
    size_t req_id_len;
};

static const char *req_states[] = {"upstream", "streaming", "backoff", "done"};

static void req_set_state(dp_req_t *r, int st)
{
    tg_log_debug("dp_proxy", "state", "req_id=%.*s from=%s to=%s", (int)r->req_id_len, r->req_id,
                 req_states[r->state], req_states[st]);
    r->state = st;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* Response head. content_length < 0 means chunked. */
static int build_head(tg_buf_t *h, const dp_conn_t *c, int status, const char *ctype,
                      long long content_length, const dp_req_t *r, const char *extra)
{
    int rc = tg_buf_appendf(h, "HTTP/1.1 %d %s\r\ncontent-type: %s\r\n", status,
                            reason_phrase(status), ctype);
    if (rc == 0)
        rc = content_length >= 0
                 ? tg_buf_appendf(h, "content-length: %lld\r\n", content_length)
                 : tg_buf_appendf(h, "transfer-encoding: chunked\r\ncache-control: no-cache\r\n");
    if (rc == 0 && r->req_id_len)
        rc = tg_buf_appendf(h, "x-request-id: %.*s\r\n", (int)r->req_id_len, r->req_id);
    if (rc == 0 && r->attempts > 0)
        rc = tg_buf_appendf(h, "x-tollgate-attempts: %u\r\n", r->attempts);
    if (rc == 0 && r->target && r->attempts > 0)
        rc = tg_buf_appendf(h, "x-tollgate-target: %s\r\n", r->target->provider->id);
    if (rc == 0 && r->cache_on)
        rc = tg_buf_appendf(h, "x-tollgate-cache: %s\r\n", r->hit ? "hit" : "miss");
    if (rc == 0 && extra)
        rc = tg_buf_appendf(h, "%s", extra);
    if (rc == 0 && dp_conn_must_close(c))
        rc = tg_buf_appendf(h, "connection: close\r\n");
    if (rc == 0)
        rc = tg_buf_append(h, "\r\n", 2);
    return rc;
}

static void respond(dp_req_t *r, int status, const char *ctype, const char *body, size_t len,
                    const char *extra)
{
    tg_buf_t h = TG_BUF_INIT(16384);
    if (build_head(&h, r->conn, status, ctype, (long long)len, r, extra) == 0)
        (void)dp_conn_write(r->conn, h.base, h.len, body, len);
    tg_buf_dispose(&h);
}

static void respond_error(dp_req_t *r, const tg_err_t *err, const char *extra)
{
    tg_buf_t b = TG_BUF_INIT(4096);
    if (dp_xlate_error_body(r->endpoint, err, &b) == 0)
        respond(r, err->status, "application/json", b.base, b.len, extra);
    tg_buf_dispose(&b);
}

/* ---- usage ---- */

static void record_usage(dp_req_t *r, int status, const char *error)
{
    dp_worker_t *w = r->w;
    dp_usage_record_t rec;
    memset(&rec, 0, sizeof(rec));
    tg_uuid4(&w->rand, rec.id);
    rec.ts_ms = tg_wall_ms();
    rec.request_id = r->req_id;
    rec.request_id_len = r->req_id_len;
    rec.key_id = r->key ? r->key->id : NULL;
    rec.tenant_id = r->key ? r->key->tenant->id : NULL;
    rec.model = r->route ? r->route->alias : NULL;
    rec.model_len = r->route ? strlen(r->route->alias) : 0;
    rec.provider = r->target ? r->target->provider->id : NULL;
    rec.upstream_model = r->target ? r->target->model : NULL;
    rec.endpoint = r->endpoint_name;
    rec.status = status;
    rec.streamed = r->body.stream;
    if (r->x_ready)
        rec.usage = r->x.st.usage;
    rec.usage_source = "none";
    if (r->hit) {
        /* an answer from the cache: what it used once, at no cost now */
        rec.provider = r->hit->provider;
        rec.upstream_model = r->hit->model;
        rec.usage = r->hit->usage;
        rec.usage_source = "cache";
    } else if (rec.usage.present) {
        rec.usage_source = "provider";
    } else if (r->target && r->t_first && r->up_status >= 200 && r->up_status < 300) {
        /* the provider answered but never said what it used (a cut stream, a client that left):
         * estimate rather than record nothing, and say so. An error answer is not billed. */
        rec.usage.prompt = dp_reqbody_estimate_prompt_tokens(r->body_len);
        rec.usage.completion = r->x_ready ? r->x.st.content_events : 0;
        rec.usage.total = rec.usage.prompt + rec.usage.completion;
        rec.usage_source = "estimated";
    }
    if (r->target && !r->hit)
        rec.cost_pusd = tg_price_cost(&r->target->price, rec.usage.prompt, rec.usage.cached,
                                      rec.usage.completion);
    uint64_t now = tg_mono_us();
    rec.latency_ms = (double)(now - r->t_start) / 1000.0;
    rec.ttfb_ms = r->t_first ? (double)(r->t_first - r->t_start) / 1000.0 : -1;
    rec.error = error;
    if (r->key)
        dp_ledger_finish(r->key, &r->adm, rec.cost_pusd, rec.usage.total);
    size_t from = w->usage.len;
    if (dp_usage_record_append(&w->usage, &rec) != 0) {
        tg_log(TG_LOG_ERROR, "dp_proxy", "usage_lost", "req_id=%.*s", (int)r->req_id_len,
               r->req_id);
        return;
    }
    /* in the page cache at once (a SIGKILL keeps it); the batch below reaches the writer later */
    dp_usage_journal_append(w->id, w->usage.base + from, w->usage.len - from);
    if (++w->usage_count >= USAGE_BATCH_MAX)
        dp_proxy_flush_usage(w);
}

void dp_proxy_flush_usage(dp_worker_t *w)
{
    if (w->usage.len == 0)
        return;
    size_t len;
    char *p = tg_buf_detach(&w->usage, &len);
    w->usage_count = 0;
    dp_usage_sink_submit(p, len, w->id);
}

/* ---- request lifetime ---- */

static dp_req_t *req_create(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg)
{
    dp_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->w = w;
    r->conn = c;
    r->msg = *msg;
    r->t_start = tg_mono_us();
    r->snap = w->snap ? tg_snap_ref(w->snap) : NULL;
    tg_buf_init(&r->url, 8192);
    tg_buf_init(&r->up_body, w->opts->limits.max_body * 2 + 65536);
    tg_buf_init(&r->resp, w->opts->max_response_bytes);
    tg_buf_init(&r->out, 8u << 20);
    tg_buf_init(&r->cache_buf, CACHE_STREAM_MAX);
    /* keep the client's request id when it is sane, so logs join up across hops */
    const tg_buf_t *rid = &msg->request_id;
    bool ok = rid->len > 0 && rid->len <= 128;
    for (size_t i = 0; ok && i < rid->len; i++) {
        char ch = rid->base[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_' || ch == '.' || ch == ':';
    }
    if (ok) {
        memcpy(r->req_id, rid->base, rid->len);
        r->req_id_len = rid->len;
    } else {
        tg_uuid4(&w->rand, r->req_id);
        r->req_id_len = 36;
    }
    memset(msg, 0, sizeof(*msg));
    return r;
}

/* curl_easy_init allocates and sets up a few KiB per handle; a finished handle is reset and
 * kept for the next request of this worker instead. */
static CURL *easy_get(dp_worker_t *w)
{
    if (w->neasy > 0)
        return w->easy_pool[--w->neasy];
    return curl_easy_init();
}

static void easy_put(dp_worker_t *w, CURL *e)
{
    if (w->neasy < (int)(sizeof(w->easy_pool) / sizeof(w->easy_pool[0]))) {
        curl_easy_reset(e);
        w->easy_pool[w->neasy++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

void dp_proxy_worker_dispose(dp_worker_t *w)
{
    while (w->neasy > 0)
        curl_easy_cleanup(w->easy_pool[--w->neasy]);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void req_destroy(dp_req_t *r)
{
    if (!r)
        return;
    if (r->easy)
        easy_put(r->w, r->easy);
    curl_slist_free_all(r->headers);
    dp_http_msg_dispose(&r->msg);
    if (r->x_ready)
        dp_xlate_dispose(&r->x);
    dp_reqbody_dispose(&r->body);
    tg_buf_dispose(&r->url);
    tg_buf_dispose(&r->up_body);
    tg_buf_dispose(&r->resp);
    tg_buf_dispose(&r->out);
    tg_buf_dispose(&r->cache_buf);
    tg_snap_unref(r->snap);
    if (r->timer_init) {
        /* the handle lives inside r: free r once the loop has closed it */
        r->timer.data = r;
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
        return;
    }
    free(r);
}

static const char *label_model(const dp_req_t *r)
{
    return r->route ? r->route->alias : "";
}

static const char *label_provider(const dp_req_t *r)
{
    return r->target ? r->target->provider->id : "";
}

/* Answers an error for a request that never reached a provider, records it and frees it. */
static void fail_request_with(dp_req_t *r, const tg_err_t *err, bool record, const char *extra)
{
    if (record) /* before the answer: a client that has it finds its record kept */
        record_usage(r, err->status, err->ecode ? err->ecode : err->type);
    respond_error(r, err, extra);
    dp_metrics_request(r->w->metrics, err->status, label_model(r), label_provider(r));
    req_destroy(r);
}

static void fail_request(dp_req_t *r, const tg_err_t *err, bool record)
{
    fail_request_with(r, err, record, NULL);
}

/* ---- authentication and routing ---- */

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

static uint64_t now_ms(const dp_req_t *r)
{
    return uv_now(&r->w->loop);
}

static dp_tstate_t *target_state(dp_req_t *r, const tg_target_t *t)
{
    return dp_health_get(r->w->health, t->provider->id, t->model);
}

/* The route's first target by its strategy, among targets with a weight whose circuit lets an
 * attempt through; a route whose weighted targets are all open starts at its first one (the plan
 * skips what is unavailable when it gets there). */
static size_t pick_first(dp_req_t *r, const tg_route_t *rt)
{
    dp_worker_t *w = r->w;
    uint64_t now = now_ms(r);
    if (rt->ntargets == 1)
        return 0;
    bool avail[64];
    uint64_t total = 0;
    for (size_t i = 0; i < rt->ntargets; i++) {
        avail[i] = rt->targets[i].weight > 0 &&
                   dp_health_available(w->health, target_state(r, &rt->targets[i]), now);
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
            const dp_tstate_t *ts = target_state(r, &rt->targets[i]);
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

static void plan_push(dp_req_t *r, const tg_route_t *rt, const tg_target_t *t)
{
    for (size_t i = 0; i < r->nplan; i++)
        if (r->plan[i].target == t)
            return;
    if (r->nplan < PLAN_MAX)
        r->plan[r->nplan++] = (plan_entry_t){rt, t, target_state(r, t)};
}

/* The strategy's pick, then the route's targets in their (fallback) order. */
static void plan_route(dp_req_t *r, const tg_route_t *rt)
{
    size_t first = pick_first(r, rt);
    plan_push(r, rt, &rt->targets[first]);
    for (size_t i = 0; i < rt->ntargets; i++)
        plan_push(r, rt, &rt->targets[i]);
}

/* A fallback alias named by the request: honoured when it exists and the key may use it. */
static void plan_fallback(dp_req_t *r, const char *alias, size_t n, size_t *count)
{
    if (n == 0 || *count >= FALLBACKS_MAX)
        return;
    const tg_route_t *rt = tg_snap_find_route(r->snap, alias, n);
    if (!rt || rt == r->route || !tg_key_allows(r->key, rt)) {
        tg_log_debug("dp_proxy", "fallback_ignored", "req_id=%.*s alias=\"%.*s\"",
                     (int)r->req_id_len, r->req_id, (int)(n > 200 ? 200 : n), alias);
        return;
    }
    (*count)++;
    plan_route(r, rt);
}

/* The request's own fallbacks: "fallback_models" in the body (removed before any upstream sees
 * it) and the x-tollgate-fallbacks header (comma-separated). */
static int plan_fallbacks(dp_req_t *r, tg_err_t *err)
{
    size_t count = 0;
    json_t *fm = dp_reqbody_fallback_models(&r->body); /* owned; the upstream body omits it */
    if (fm && !json_is_null(fm)) {
        if (!json_is_array(fm) || json_array_size(fm) > FALLBACKS_MAX) {
            tg_err_set(err, TG_EINVAL, 400,
                       "'fallback_models' must be an array of at most %d model names",
                       FALLBACKS_MAX);
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
            plan_fallback(r, json_string_value(v), json_string_length(v), &count);
    }
    json_decref(fm);
    const tg_buf_t *h = &r->msg.fallbacks;
    size_t i = 0;
    while (i < h->len) {
        size_t j = i;
        while (j < h->len && h->base[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (h->base[a] == ' ' || h->base[a] == '\t'))
            a++;
        while (b > a && (h->base[b - 1] == ' ' || h->base[b - 1] == '\t'))
            b--;
        plan_fallback(r, h->base + a, b - a, &count);
        i = j + 1;
    }
    return 0;
}

/* Rate limits and budgets of the key and its tenant. The worst case assumes one token per body
 * byte (a byte-level BPE token covers at least one byte) and max_tokens, or
 * DP_WORST_COMPLETION_TOKENS without it, at the dearest target the plan may reach. On refusal
 * the request is answered and freed. */
static int admit(dp_req_t *r, tg_err_t *err)
{
    int64_t max_out = r->body.max_tokens > 0 ? r->body.max_tokens : 0;
    int64_t worst_out = r->endpoint == DP_EP_EMBEDDINGS ? 0
                        : max_out > 0                   ? max_out
                                                        : DP_WORST_COMPLETION_TOKENS;
    dp_worst_t worst = {0, (int64_t)r->body_len, worst_out, worst_out > 0 && max_out == 0};
    for (size_t i = 0; i < r->nplan; i++) {
        int64_t c = tg_price_cost(&r->plan[i].target->price, (int64_t)r->body_len, 0, worst_out);
        worst.pusd = c > worst.pusd ? c : worst.pusd;
    }
    int64_t est = dp_reqbody_estimate_prompt_tokens(r->body_len) + max_out;
    char ra[32];
    if (dp_ledger_admit(r->key, &worst, est, &r->adm, err, ra, sizeof(ra)) == 0)
        return 0;
    char extra[512];
    snprintf(extra, sizeof(extra), "%s%s%s%s", r->adm.headers, ra[0] ? "retry-after: " : "", ra,
             ra[0] ? "\r\n" : "");
    fail_request_with(r, err, true, extra);
    return TG_ERATE;
}

/* An anthropic-beta value worth passing on: 1-1024 printable ASCII characters (feature names
 * and commas); anything else is not sent. */
static bool beta_ok(const tg_buf_t *b)
{
    if (b->len == 0 || b->len > 1024)
        return false;
    for (size_t i = 0; i < b->len; i++)
        if ((unsigned char)b->base[i] < 0x20 || (unsigned char)b->base[i] >= 0x7f)
            return false;
    return true;
}

/* ---- upstream callbacks ---- */

static size_t on_up_header(char *p, size_t size, size_t n, void *ud)
{
    dp_req_t *r = ud;
    size_t len = size * n;
    if (len > 12 && tg_mem_caseeq(p, 12, "retry-after:", 12)) {
        const char *v = p + 12;
        size_t vl = len - 12;
        while (vl > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl > 0 && vl < sizeof(r->retry_after)) {
            bool digits = true;
            for (size_t i = 0; i < vl; i++)
                digits = digits && v[i] >= '0' && v[i] <= '9';
            if (digits) {
                memcpy(r->retry_after, v, vl);
                r->retry_after[vl] = '\0';
            }
        }
    }
    return len;
}

static void attempt_done(dp_req_t *r, CURLcode rc);
static bool attempt_start(dp_req_t *r);

/* ---- response cache ---- */

/* The client's cache-control: no-store (do not keep this answer), no-cache (do not answer from
 * the cache), max-age=N (only answers at most N seconds old). */
static void read_cache_control(const tg_buf_t *h, bool *read, bool *store, int64_t *max_age_ms)
{
    size_t i = 0;
    while (i < h->len) {
        size_t j = i;
        while (j < h->len && h->base[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (h->base[a] == ' ' || h->base[a] == '\t'))
            a++;
        while (b > a && (h->base[b - 1] == ' ' || h->base[b - 1] == '\t'))
            b--;
        const char *t = h->base + a;
        size_t n = b - a;
        if (tg_mem_caseeq(t, n, "no-store", 8)) {
            *store = false;
        } else if (tg_mem_caseeq(t, n, "no-cache", 8)) {
            *read = false;
        } else if (n > 8 && tg_mem_caseeq(t, 8, "max-age=", 8)) {
            int64_t v = 0;
            size_t k = 8;
            for (; k < n && t[k] >= '0' && t[k] <= '9' && v < 100000000; k++)
                v = v * 10 + (t[k] - '0');
            if (k == n) /* ages are whole seconds, as the age header says */
                *max_age_ms = v * 1000 + 999;
        }
        i = j + 1;
    }
}

/* Looks the request up when its route caches. true: answered from the cache (and freed). */
static bool cache_lookup(dp_req_t *r)
{
    dp_cache_t *c = r->w->cache;
    if (!c || r->route->cache_ttl_s == 0)
        return false;
    bool read = true, store = true;
    int64_t max_age = -1;
    read_cache_control(&r->msg.cache_control, &read, &store, &max_age);
    if (!read && !store)
        return false;
    const json_t *tree = dp_reqbody_json(&r->body);
    if (!tree || dp_cache_key(r->key->tenant->id, r->endpoint, r->route->alias, tree,
                     r->cache_key) != 0)
        return false;
    r->cache_on = true;
    r->cache_store = store;
    if (!read)
        return false;
    int64_t now = (int64_t)now_ms(r);
    r->hit = dp_cache_get(c, r->cache_key, now, max_age);
    if (!r->hit)
        return false;
    char extra[640];
    snprintf(extra, sizeof(extra), "age: %lld\r\n%s", (long long)((now - r->hit->stored_ms) / 1000),
             r->adm.headers);
    record_usage(r, 200, NULL); /* before the answer's bytes, as complete() expects */
    if (r->hit->stream) {
        tg_buf_t h = TG_BUF_INIT(16384);
        if (build_head(&h, r->conn, 200, "text/event-stream", -1, r, extra) == 0 &&
            dp_conn_write(r->conn, h.base, h.len, NULL, 0) == 0 &&
            dp_conn_write_chunk(r->conn, r->hit->body, r->hit->len) == 0)
            (void)dp_conn_write_chunk(r->conn, NULL, 0);
        tg_buf_dispose(&h);
    } else {
        respond(r, 200, "application/json", r->hit->body, r->hit->len, extra);
    }
    dp_metrics_request(r->w->metrics, 200, label_model(r), r->hit->provider);
    r->hit = NULL;
    req_destroy(r);
    return true;
}

static void cache_store(dp_req_t *r, const char *body, size_t len)
{
    (void)dp_cache_put(r->w->cache, r->cache_key, body, len, r->body.stream,
                       r->target->provider->id, r->target->model, &r->x.st.usage,
                       (int64_t)now_ms(r), (int64_t)r->route->cache_ttl_s * 1000);
}

static void timer_arm(dp_req_t *r, uint64_t ms, uv_timer_cb cb)
{
    if (!r->timer_init) {
        uv_timer_init(&r->w->loop, &r->timer);
        r->timer_init = true;
    }
    r->timer.data = r;
    uv_timer_start(&r->timer, cb, ms, 0);
}

static void timer_stop(dp_req_t *r)
{
    if (r->timer_init)
        uv_timer_stop(&r->timer);
}

/* ms until the attempt's next deadline (first byte, idle between bytes); 0 when one has passed,
 * UINT64_MAX when there is none. */
static uint64_t deadline_in(const dp_req_t *r, uint64_t now)
{
    const tg_route_t *rt = r->plan[r->pos].route;
    uint64_t best = UINT64_MAX;
    if (!r->t_first && rt->first_byte_timeout_ms) {
        uint64_t due = r->attempt_ms + rt->first_byte_timeout_ms;
        best = due <= now ? 0 : due - now;
    }
    if (!r->t_first && rt->idle_timeout_ms) {
        /* idle time counts from the first byte: look again by then */
        best = rt->idle_timeout_ms < best ? rt->idle_timeout_ms : best;
    } else if (r->t_first && rt->idle_timeout_ms && r->paused) {
        /* the client is slow, not the provider: look again later */
        best = rt->idle_timeout_ms < best ? rt->idle_timeout_ms : best;
    } else if (r->t_first && rt->idle_timeout_ms) {
        uint64_t due = r->last_byte_ms + rt->idle_timeout_ms;
        uint64_t in = due <= now ? 0 : due - now;
        best = in < best ? in : best;
    }
    return best;
}

static void on_deadline(uv_timer_t *t)
{
    dp_req_t *r = t->data;
    if (r->state != DP_REQ_UPSTREAM && r->state != DP_REQ_STREAMING)
        return;
    uint64_t in = deadline_in(r, now_ms(r));
    if (in == UINT64_MAX)
        return;
    if (in > 0) {
        timer_arm(r, in, on_deadline);
        return;
    }
    tg_log(TG_LOG_WARN, "dp_proxy", "upstream_deadline", "req_id=%.*s provider=%s first_byte=%d",
           (int)r->req_id_len, r->req_id, r->target->provider->id, r->t_first != 0);
    dp_upstream_remove(r->w->up, r->easy);
    attempt_done(r, CURLE_OPERATION_TIMEDOUT);
}

static int start_client_stream(dp_req_t *r)
{
    tg_buf_t h = TG_BUF_INIT(16384);
    int rc = build_head(&h, r->conn, 200, "text/event-stream", -1, r, r->adm.headers);
    if (rc == 0)
        rc = dp_conn_write(r->conn, h.base, h.len, NULL, 0);
    tg_buf_dispose(&h);
    r->stream_started = rc == 0;
    req_set_state(r, DP_REQ_STREAMING);
    return rc;
}

static int relay(dp_req_t *r, const char *p, size_t len);

static size_t on_up_data(char *p, size_t size, size_t n, void *ud)
{
    dp_req_t *r = ud;
    size_t len = size * n;
    if (!r->t_first) {
        char *ctype = NULL;
        r->t_first = tg_mono_us();
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->up_status);
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
        const char *want = dp_xlate_stream_content_type(&r->x);
        r->up_stream = r->body.stream && r->up_status >= 200 && r->up_status < 300 && ctype &&
                       strncmp(ctype, want, strlen(want)) == 0;
    }
    r->last_byte_ms = now_ms(r);
    if (!r->conn)
        return 0; /* the client is gone: abort */
    if (!r->up_stream) {
        if (tg_buf_append(&r->resp, p, len) != 0) {
            r->too_large = true;
            return 0;
        }
        return len;
    }
    if (r->stream_started && dp_conn_write_queue(r->conn) > DP_WQ_HIGH) {
        r->paused = true; /* dp_proxy_client_drained unpauses; curl delivers this again */
        return CURL_WRITEFUNC_PAUSE;
    }
    /* until the client's stream starts, the first event goes through alone so that the
     * response head leaves with it, before the rest of a large read is translated (adapters
     * take bytes split anywhere, so any cut is safe) */
    size_t first = len;
    if (!r->stream_started) {
        const char *e = tg_memmem(p, len, "\n\n", 2);
        if (e && (size_t)(e - p) + 2 < len)
            first = (size_t)(e - p) + 2;
    }
    if (relay(r, p, first) != 0)
        return 0;
    if (first < len && relay(r, p + first, len - first) != 0)
        return 0;
    return len;
}

/* Translates streamed bytes and writes what they complete to the client. */
static int relay(dp_req_t *r, const char *p, size_t len)
{
    tg_buf_reset(&r->out);
    int frc = dp_xlate_feed(&r->x, p, len, &r->out);
    if (frc != 0 && !r->stream_started)
        return frc; /* nothing reached the client yet: another target may still answer */
    /* the client's stream starts with the first bytes it can use: until then, a failure can
     * still go to another target */
    if (r->out.len > 0 && !r->stream_started && start_client_stream(r) != 0)
        return TG_EIO;
    /* all events completed by this read leave together, in this loop iteration */
    if (r->out.len > 0 && dp_conn_write_chunk(r->conn, r->out.base, r->out.len) != 0)
        return TG_EIO;
    if (frc != 0)
        return frc; /* the events completed before the unreadable bytes went out */
    if (r->cache_store && r->out.len > 0 &&
        tg_buf_append(&r->cache_buf, r->out.base, r->out.len) != 0)
        r->cache_store = false; /* too long to keep */
    return 0;
}

void dp_proxy_client_drained(dp_req_t *r)
{
    if (r->paused && r->easy) {
        r->paused = false;
        r->last_byte_ms = now_ms(r);
        curl_easy_pause(r->easy, CURLPAUSE_CONT);
    }
}

static void map_curl_error(dp_req_t *r, CURLcode rc, tg_err_t *err)
{
    const char *prov = r->target->provider->id;
    if (r->too_large) {
        tg_err_set(err, TG_EUPSTREAM, 502, "the answer of provider \"%s\" is too large", prov);
        tg_err_code(err, "upstream_too_large");
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        tg_err_set(err, TG_ETIMEOUT, 504, "provider \"%s\" did not answer in time", prov);
        tg_err_code(err, "upstream_timeout");
    } else if (rc == CURLE_WRITE_ERROR) {
        tg_err_set(err, TG_EUPSTREAM, 502, "provider \"%s\" sent an answer that could not be read",
                   prov);
        tg_err_code(err, "upstream_bad_response");
    } else {
        tg_err_set(err, TG_EUPSTREAM, 502, "could not reach provider \"%s\": %s", prov,
                   curl_easy_strerror(rc));
        tg_err_code(err, "upstream_unreachable");
    }
}

/* The request is over: metrics, free; the connection reads its next request. Its usage record
 * was made before the response's last bytes were written (record_usage puts it in the loop's
 * journal at once): no client holds an answer whose record a SIGKILL could still lose. */
static void complete(dp_req_t *r, int status, bool async)
{
    dp_worker_t *w = r->w;
    dp_conn_t *c = r->conn;
    dp_metrics_request(w->metrics, status, label_model(r), label_provider(r));
    if (r->attempts > 0)
        dp_metrics_upstream(w->metrics, (double)(tg_mono_us() - r->t_start) / 1e6);
    req_set_state(r, DP_REQ_DONE);
    req_destroy(r);
    if (c && async)
        dp_conn_request_done(c);
}

/* Answers with a gateway error and completes. */
static void give_up(dp_req_t *r, const tg_err_t *err, const char *extra, bool async)
{
    record_usage(r, err->status, err->ecode ? err->ecode : err->type);
    if (r->conn)
        respond_error(r, err, extra);
    complete(r, err->status, async);
}

/* The next plan entry from `from` whose circuit lets an attempt through, or nplan. */
static size_t next_available(dp_req_t *r, size_t from)
{
    uint64_t now = now_ms(r);
    for (size_t i = from; i < r->nplan; i++)
        if (dp_health_available(r->w->health, r->plan[i].ts, now))
            return i;
    return r->nplan;
}

/* Drops the finished attempt's handle and buffers so that another can start. */
static void attempt_reset(dp_req_t *r)
{
    if (r->easy) {
        easy_put(r->w, r->easy);
        r->easy = NULL;
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    tg_buf_reset(&r->url);
    tg_buf_reset(&r->up_body);
    tg_buf_reset(&r->resp);
    tg_buf_reset(&r->out);
    r->up_status = 0;
    r->up_stream = false;
    r->too_large = false;
    r->paused = false;
    r->t_first = 0;
    r->retry_after[0] = '\0';
}

static void on_backoff(uv_timer_t *t)
{
    dp_req_t *r = t->data;
    if (r->state == DP_REQ_BACKOFF)
        (void)attempt_start(r);
}

/* After a failed attempt that may be retried: waits and tries the same target again while its
 * route's max_attempts allows (exponential backoff with full jitter, at least the provider's
 * retry-after; a retry-after longer than BACKOFF_CAP_MS moves on instead), else moves to the next
 * available target at once. false: nothing is left to try. */
static bool retry_or_fallback(dp_req_t *r)
{
    if (r->attempts >= ATTEMPTS_MAX)
        return false;
    const tg_retry_t *p = &r->plan[r->pos].route->retry;
    if (r->tries < p->max_attempts) {
        uint64_t cap = (uint64_t)p->backoff_ms << (r->tries - 1 < 16 ? r->tries - 1 : 16);
        cap = cap > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : cap;
        uint64_t delay = cap ? tg_rand_next(&r->w->rand) % (cap + 1) : 0;
        bool move_on = false;
        if (r->retry_after[0]) {
            uint64_t ra = strtoull(r->retry_after, NULL, 10) * 1000;
            move_on = ra > BACKOFF_CAP_MS;
            delay = ra > delay ? ra : delay;
        }
        if (!move_on) {
            attempt_reset(r);
            req_set_state(r, DP_REQ_BACKOFF);
            timer_arm(r, delay, on_backoff);
            return true;
        }
    }
    size_t next = next_available(r, r->pos + 1);
    if (next >= r->nplan)
        return false;
    attempt_reset(r);
    r->pos = next;
    r->tries = 0;
    req_set_state(r, DP_REQ_BACKOFF);
    timer_arm(r, 0, on_backoff); /* from the loop, not from inside this curl callback */
    return true;
}

static void on_up_done(dp_upstream_xfer_t *x, CURLcode rc)
{
    attempt_done((dp_req_t *)x, rc);
}

/* A streamed answer that reached the client ends: with an error event if it broke. */
static void end_stream(dp_req_t *r, CURLcode rc)
{
    tg_err_t err;
    int status = 200;
    const char *error = NULL;
    tg_err_clear(&err);
    tg_buf_reset(&r->out);
    if (dp_xlate_end(&r->x, rc == CURLE_OK, &r->out) != 0)
        tg_buf_reset(&r->out);
    if (rc != CURLE_OK) {
        map_curl_error(r, rc, &err);
        tg_log(TG_LOG_WARN, "dp_proxy", "stream_broken", "req_id=%.*s provider=%s reason=\"%s\"",
               (int)r->req_id_len, r->req_id, r->target->provider->id, curl_easy_strerror(rc));
        /* an error event, as OpenAI and Anthropic send mid-stream; the SDKs raise it */
        if (dp_xlate_error_event(r->endpoint, &err, &r->out) != 0)
            tg_buf_reset(&r->out);
        status = err.status;
        error = err.ecode;
    }
    record_usage(r, status, error);
    if (r->conn) {
        if (!r->stream_started)
            (void)start_client_stream(r);
        if (r->out.len)
            (void)dp_conn_write_chunk(r->conn, r->out.base, r->out.len);
        (void)dp_conn_write_chunk(r->conn, NULL, 0);
    }
    if (rc == CURLE_OK && r->cache_store && r->x.st.done &&
        tg_buf_append(&r->cache_buf, r->out.base ? r->out.base : "", r->out.len) == 0)
        cache_store(r, r->cache_buf.base, r->cache_buf.len);
    complete(r, status, true);
}

static void attempt_done(dp_req_t *r, CURLcode rc)
{
    dp_worker_t *w = r->w;
    tg_err_t err;
    tg_err_clear(&err);
    timer_stop(r);
    atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_relaxed);
    if (!r->t_first) /* no body at all: still read the status */
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->up_status);
    int status = (int)r->up_status;
    bool failed = rc != CURLE_OK || status >= 500 || status == 429;
    double ttfb = r->t_first ? (double)(r->t_first - r->t_attempt) / 1000.0 : -1;
    dp_health_end(w->health, r->ts, !failed, ttfb, now_ms(r));
    if (r->stream_started || (r->up_stream && rc == CURLE_OK)) {
        end_stream(r, rc);
        return;
    }
    bool retryable =
        rc != CURLE_OK ? !r->too_large : tg_retry_on_status(&r->plan[r->pos].route->retry, status);
    if (rc != CURLE_OK)
        tg_log(TG_LOG_WARN, "dp_proxy", "upstream_failed",
               "req_id=%.*s provider=%s attempt=%u reason=\"%s\"", (int)r->req_id_len, r->req_id,
               r->target->provider->id, r->attempts, curl_easy_strerror(rc));
    else if (failed)
        tg_log(TG_LOG_INFO, "dp_proxy", "upstream_error",
               "req_id=%.*s provider=%s attempt=%u status=%d", (int)r->req_id_len, r->req_id,
               r->target->provider->id, r->attempts, status);
    if (retryable && r->conn && retry_or_fallback(r))
        return;
    if (rc != CURLE_OK) {
        map_curl_error(r, rc, &err);
        give_up(r, &err, NULL, true);
        return;
    }
    const char *body = NULL;
    size_t body_len = 0;
    tg_buf_reset(&r->out);
    int xr = dp_xlate_response(&r->x, status, r->resp.base ? r->resp.base : "", r->resp.len,
                               &r->out, &body, &body_len);
    if (xr < 0) {
        if (status >= 200 && status < 300) {
            tg_err_set(&err, TG_EUPSTREAM, 502, "the answer of provider \"%s\" could not be read",
                       r->target->provider->id);
            tg_err_code(&err, "upstream_bad_response");
            give_up(r, &err, NULL, true);
            return;
        }
        body = r->resp.base; /* an error the adapter could not read: as the provider sent it */
        body_len = r->resp.len;
    }
    record_usage(r, status, status >= 400 ? "upstream_error" : NULL);
    if (r->conn) {
        char *ctype = NULL;
        char extra[768];
        int n = snprintf(extra, sizeof(extra), "%s", r->adm.headers);
        if (r->retry_after[0] && n >= 0 && (size_t)n < sizeof(extra))
            snprintf(extra + n, sizeof(extra) - (size_t)n, "retry-after: %s\r\n", r->retry_after);
        if (body == r->resp.base)
            curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
        if (!ctype || strpbrk(ctype, "\r\n"))
            ctype = "application/json";
        respond(r, status, ctype, body ? body : "", body_len, extra);
    }
    if (status >= 200 && status < 300 && r->cache_store)
        cache_store(r, body ? body : "", body_len);
    complete(r, status, true);
}

static int add_header(void *ud, const char *line)
{
    dp_req_t *r = ud;
    struct curl_slist *l = curl_slist_append(r->headers, line);
    if (!l)
        return TG_ENOMEM;
    r->headers = l;
    return 0;
}

/* Starts an attempt on plan entry r->pos. A target that cannot take the request (the adapter
 * cannot express it, or curl refuses) moves on to the next. false: the request was answered and
 * freed. */
static bool attempt_start(dp_req_t *r)
{
    bool async = r->async;
    tg_err_t err;
    tg_err_clear(&err);
    for (;;) {
        const plan_entry_t *pe = &r->plan[r->pos];
        r->target = pe->target;
        r->ts = pe->ts;
        r->attempts++;
        r->tries++;
        r->t_attempt = tg_mono_us();
        r->attempt_ms = r->last_byte_ms = now_ms(r);
        req_set_state(r, DP_REQ_UPSTREAM);
        int rc = dp_xlate_build(&r->x, pe->target->provider, pe->target->model, r->req_id,
                                tg_wall_ms() / 1000, add_header, r, &r->url, &r->up_body, &err);
        if (rc == 0) {
            r->easy = easy_get(r->w);
            if (!r->easy) {
                tg_err_set(&err, TG_ENOMEM, 503, "could not start the upstream request");
                rc = TG_ENOMEM;
            }
        }
        if (rc == 0) {
            CURL *e = r->easy;
            dp_upstream_easy_defaults(e);
            curl_easy_setopt(e, CURLOPT_URL, r->url.base);
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->up_body.base ? r->up_body.base : "");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->up_body.len);
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_up_data);
            curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
            curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_up_header);
            curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
            curl_easy_setopt(e, CURLOPT_PRIVATE, &r->xfer);
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)pe->route->connect_timeout_ms);
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)pe->route->timeout_ms);
            r->xfer.done = on_up_done;
            if (dp_upstream_add(r->w->up, e) != 0) {
                tg_err_set(&err, TG_EUPSTREAM, 503, "could not start the upstream request");
                rc = TG_EUPSTREAM;
            }
        }
        if (rc == 0) {
            atomic_fetch_add_explicit(&r->w->inflight, 1, memory_order_relaxed);
            dp_health_start(r->w->health, r->ts, now_ms(r));
            uint64_t in = deadline_in(r, now_ms(r));
            if (in != UINT64_MAX)
                timer_arm(r, in, on_deadline);
            return true;
        }
        tg_log(TG_LOG_WARN, "dp_proxy", "attempt_not_started",
               "req_id=%.*s provider=%s reason=\"%s\"", (int)r->req_id_len, r->req_id,
               pe->target->provider->id, err.msg);
        attempt_reset(r);
        size_t next = next_available(r, r->pos + 1);
        if (next >= r->nplan || r->attempts >= ATTEMPTS_MAX) {
            give_up(r, &err, NULL, async);
            return false;
        }
        r->pos = next;
        r->tries = 0;
    }
}

void dp_proxy_client_gone(dp_req_t *r)
{
    dp_worker_t *w = r->w;
    r->conn = NULL;
    if (r->state != DP_REQ_DONE) {
        timer_stop(r);
        if (r->easy && (r->state == DP_REQ_UPSTREAM || r->state == DP_REQ_STREAMING)) {
            /* cancel at once: the provider stops generating (and billing) */
            dp_upstream_remove(w->up, r->easy);
            atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_relaxed);
            dp_health_cancel(w->health, r->ts);
        }
        tg_log(TG_LOG_INFO, "dp_proxy", "client_gone", "req_id=%.*s streamed=%d",
               (int)r->req_id_len, r->req_id, r->stream_started);
        dp_metrics_request(w->metrics, 499, label_model(r), label_provider(r));
        record_usage(r, 499, "client_closed_request");
    }
    req_destroy(r);
}

/* ---- endpoints ---- */

static void handle_models(dp_req_t *r)
{
    tg_buf_t b = TG_BUF_INIT(64u << 20);
    int rc = tg_buf_appendf(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; rc == 0 && i < r->key->nroutes; i++) {
        const char *alias = r->key->routes[i]->alias;
        rc = tg_buf_appendf(&b, "%s{\"id\":", i ? "," : "");
        if (rc == 0)
            rc = tg_buf_append_json_str(&b, alias, strlen(alias));
        if (rc == 0)
            rc = tg_buf_appendf(&b,
                                ",\"object\":\"model\",\"created\":0,\"owned_by\":\"tollgate\"}");
    }
    if (rc == 0)
        rc = tg_buf_append(&b, "]}", 2);
    if (rc == 0)
        respond(r, 200, "application/json", b.base, b.len, NULL);
    tg_buf_dispose(&b);
    dp_metrics_request(r->w->metrics, rc == 0 ? 200 : 500, "", "");
}

static void handle_metrics(dp_req_t *r)
{
    int n;
    dp_worker_t **ws = dp_server_workers(&n);
    tg_buf_t b = TG_BUF_INIT(64u << 20);
    if (dp_metrics_render(&b, ws, n, dp_server_snapshot_version()) == 0)
        respond(r, 200, "text/plain; version=0.0.4", b.base, b.len, NULL);
    tg_buf_dispose(&b);
}

static bool path_is(const char *p, size_t n, const char *lit)
{
    return tg_mem_eq(p, n, lit, strlen(lit));
}

static bool is_probe_path(const char *path, size_t plen)
{
    return path_is(path, plen, "/healthz") || path_is(path, plen, "/readyz") ||
           path_is(path, plen, "/metrics");
}

/* What a request's head decides without its body: the endpoint (404), the method (405, with
 * the Allow header), a configuration (503) and the API key (401). Reads the head in place and
 * allocates nothing, so the check before a body is read costs no request object. */
typedef struct head {
    int endpoint;              /* DP_EP_*, 0 for /v1/models; set before a 405, 503 or 401 */
    const char *endpoint_name; /* static */
    const char *allow;         /* the Allow header line of a 405, static */
    const tg_key_t *key;       /* borrowed from snap */
} head_t;

static int check_head(const tg_snap_t *snap, const dp_http_msg_t *m, head_t *h, tg_err_t *err)
{
    const char *path;
    size_t plen;
    dp_http_path(m, &path, &plen);
    memset(h, 0, sizeof(*h));
    int ep = 0;
    if (path_is(path, plen, "/v1/chat/completions")) {
        ep = DP_EP_CHAT;
        h->endpoint_name = "chat.completions";
    } else if (path_is(path, plen, "/v1/completions")) {
        ep = DP_EP_COMPLETIONS;
        h->endpoint_name = "completions";
    } else if (path_is(path, plen, "/v1/embeddings")) {
        ep = DP_EP_EMBEDDINGS;
        h->endpoint_name = "embeddings";
    } else if (path_is(path, plen, "/v1/messages")) {
        ep = DP_EP_MESSAGES;
        h->endpoint_name = "messages";
    } else if (!path_is(path, plen, "/v1/models")) {
        tg_err_set(err, TG_ENOTFOUND, 404, "unknown path \"%.*s\"", (int)(plen > 200 ? 200 : plen),
                   path);
        tg_err_code(err, "unknown_url");
        return TG_ENOTFOUND;
    }
    h->endpoint = ep; /* from here, errors take the endpoint's shape (OpenAI's or Anthropic's) */
    bool is_models = ep == 0;
    if ((is_models && m->method != HTTP_GET) || (!is_models && m->method != HTTP_POST)) {
        tg_err_set(err, TG_EINVAL, 405, "use %s for this path", is_models ? "GET" : "POST");
        h->allow = is_models ? "allow: GET\r\n" : "allow: POST\r\n";
        return TG_EINVAL;
    }
    if (!snap) {
        tg_err_set(err, TG_EUPSTREAM, 503, "the gateway has no configuration yet; retry shortly");
        return TG_EUPSTREAM;
    }
    return authenticate(snap, m, &h->key, err);
}

bool dp_proxy_refuse_head(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *head)
{
    tg_err_t err;
    head_t h;
    const char *path;
    size_t plen;
    int rc;
    tg_err_clear(&err);
    memset(&h, 0, sizeof(h));
    dp_http_path(head, &path, &plen);
    if (is_probe_path(path, plen)) {
        /* no key here, so no body either */
        bool get = head->method == HTTP_GET || head->method == HTTP_HEAD;
        tg_err_set(&err, TG_EINVAL, get ? 400 : 405,
                   get ? "this path takes no request body" : "use GET");
        h.allow = get ? NULL : "allow: GET\r\n";
        rc = TG_EINVAL;
    } else {
        rc = check_head(w->snap, head, &h, &err);
    }
    if (rc == 0)
        return false;
    /* a request only to answer: r->msg borrows the parser's buffers until the memset below,
     * so that req_destroy does not free them */
    dp_http_msg_t view = *head;
    dp_req_t *r = req_create(w, c, &view);
    if (!r)
        return false; /* the whole request meets the same checks */
    memset(&r->msg, 0, sizeof(r->msg));
    r->endpoint = h.endpoint;
    r->endpoint_name = h.endpoint_name;
    fail_request_with(r, &err, false, h.allow);
    return true;
}

dp_req_t *dp_proxy_handle(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg)
{
    tg_err_t err;
    const char *path;
    size_t plen;
    tg_err_clear(&err);
    dp_req_t *r = req_create(w, c, msg);
    if (!r) {
        static const char oom[] = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n"
                                  "connection: close\r\n\r\n";
        dp_http_msg_dispose(msg);
        (void)dp_conn_write(c, oom, sizeof(oom) - 1, NULL, 0);
        return NULL;
    }
    dp_http_path(&r->msg, &path, &plen);
    int method = r->msg.method;

    if (is_probe_path(path, plen)) {
        if (method != HTTP_GET && method != HTTP_HEAD) {
            tg_err_set(&err, TG_EINVAL, 405, "use GET");
            respond_error(r, &err, "allow: GET\r\n");
        } else if (path_is(path, plen, "/metrics")) {
            handle_metrics(r);
        } else if (path_is(path, plen, "/healthz")) {
            static const char ok[] = "{\"status\":\"ok\"}";
            respond(r, 200, "application/json", ok, sizeof(ok) - 1, NULL);
        } else if (r->snap) {
            char body[96];
            int n = snprintf(body, sizeof(body), "{\"status\":\"ready\",\"snapshot_version\":%lld}",
                             (long long)r->snap->version);
            respond(r, 200, "application/json", body, (size_t)n, NULL);
        } else {
            static const char nr[] = "{\"status\":\"no configuration snapshot loaded\"}";
            respond(r, 503, "application/json", nr, sizeof(nr) - 1, NULL);
        }
        req_destroy(r);
        return NULL;
    }

    head_t h;
    int hrc = check_head(r->snap, &r->msg, &h, &err);
    r->endpoint = h.endpoint;
    r->endpoint_name = h.endpoint_name;
    r->key = h.key;
    if (hrc != 0) {
        fail_request_with(r, &err, false, h.allow);
        return NULL;
    }
    int ep = r->endpoint;
    bool is_models = ep == 0;
    if (is_models) {
        handle_models(r);
        req_destroy(r);
        return NULL;
    }
    r->body_len = r->msg.body.len;
    if (dp_reqbody_parse(&r->body, ep, r->msg.body.base, r->msg.body.len, &err) != 0) {
        fail_request(r, &err, true);
        return NULL;
    }
    /* the body keeps its own copy of the bytes; the read buffer is no longer needed */
    tg_buf_dispose(&r->msg.body);
    r->route = tg_snap_find_route(r->snap, r->body.model, r->body.model_len);
    if (!r->route) {
        tg_err_set(&err, TG_ENOTFOUND, 404, "the model \"%.*s\" does not exist",
                   (int)(r->body.model_len > 200 ? 200 : r->body.model_len), r->body.model);
        tg_err_code(&err, "model_not_found");
        err.param = "model";
        fail_request(r, &err, true);
        return NULL;
    }
    if (!tg_key_allows(r->key, r->route)) {
        tg_err_set(&err, TG_EFORBIDDEN, 403, "this API key may not use the model \"%s\"",
                   r->route->alias);
        tg_err_code(&err, "model_not_allowed");
        err.param = "model";
        const tg_route_t *rt = r->route;
        r->route = NULL;
        fail_request(r, &err, true);
        (void)rt;
        return NULL;
    }
    plan_route(r, r->route);
    if (plan_fallbacks(r, &err) != 0) {
        fail_request(r, &err, true);
        return NULL;
    }
    if (admit(r, &err) != 0)
        return NULL;
    if (cache_lookup(r))
        return NULL;
    dp_xlate_init(&r->x, r->endpoint, &r->body, r->body.include_usage);
    r->x_ready = true;
    if (r->endpoint == DP_EP_MESSAGES && beta_ok(&r->msg.anthropic_beta) &&
        tg_buf_append(&r->msg.anthropic_beta, "", 1) == 0)
        r->x.anthropic_beta = r->msg.anthropic_beta.base;
    /* every circuit open: try the plan anyway rather than refuse outright (Envoy's panic
     * threshold does the same); a fallback is what makes a dead provider cost nothing */
    r->pos = next_available(r, 0);
    if (r->pos >= r->nplan)
        r->pos = 0;
    if (!attempt_start(r))
        return NULL;
    r->async = true;
    return r;
}
