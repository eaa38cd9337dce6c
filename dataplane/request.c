/* request.c: one request from the gate's plan to its usage record: runs attempts down the plan
 * with retries, backoff and circuit breakers until one answers; relays the answer (buffered or
 * streamed, translated by xlate.c) through the connection's writer and records what it cost. A
 * request owns its parsed message, its exchange and its buffers, and holds a snapshot ref for
 * its whole life, so a reload never changes config under it. Every way a request ends goes
 * through settle() (usage record, hold released) and then finish() (metrics, connection, free).
 * Loop thread only. */
#include "request.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cost.h"
#include "metrics.h"
#include "reqbody.h"
#include "rstate.h"
#include "tg_fmt.h"
#include "tg_list.h"
#include "tg_log.h"
#include "tg_pool.h"
#include "tg_time.h"
#include "upstream.h"
#include "usage.h"
#include "usage_sink.h"
#include "xlate.h"
#include "xresp.h"

#include "tg_banned.h"

#define USAGE_BATCH_MAX 1000
#define ATTEMPTS_MAX 20             /* upstream attempts one request may make */
#define BACKOFF_CAP_MS 10000        /* longest wait before a retry; a longer retry-after moves on */
#define CACHE_STREAM_MAX (1u << 20) /* a longer streamed answer is not cached */
#define REQ_CACHE_MAX 64            /* ended requests a loop keeps for reuse */
#define REQ_OUT_KEEP 16384          /* a request whose output buffer grew larger is not kept */
#define REQ_ARENA_CHUNK 1024        /* the arena's chunk (copies of header values) */

enum {
    DP_REQ_GATE = 0,  /* reading the body, routing, admission, the cache */
    DP_REQ_UPSTREAM,  /* waiting for the provider */
    DP_REQ_STREAMING, /* relaying events */
    DP_REQ_BACKOFF,   /* waiting to retry */
    DP_REQ_STORING,   /* the upstream is done; the answer's last bytes wait for the store */
    DP_REQ_DONE,
};

struct dp_req {
    dp_conn_watch_t watch; /* the connection's events: client gone, writes drained */
    dp_worker_t *w;
    dp_conn_t *conn; /* NULL once the client is gone */
    tg_snap_t *snap; /* one ref, for the request's whole life */
    int state;       /* DP_REQ_*, changed only by req_set_state */
    char req_id[DP_REQ_ID_MAX];
    size_t req_id_len;
    uint64_t t_start; /* mono us */
    tg_pool_t pool;   /* copies and scratch that live as long as the request */
    dp_reqbody_t body;
    size_t body_len;
    bool body_released; /* body's bytes freed (release_request_body) */
    dp_gate_t gate;     /* endpoint, key, route, plan and admission hold */
    dp_xlate_t x;       /* the translation between the client's format and the target's */
    bool x_ready;
    struct {                       /* the current attempt */
        size_t pos;                /* the plan entry being tried */
        const tg_target_t *target; /* its target */
        dp_tstate_t *ts;           /* its health, or NULL */
        uint32_t n;                /* upstream attempts started */
        uint32_t tries;            /* of them on the current target */
        dp_exchange_t *x;          /* owned while the attempt lasts */
        int status;                /* the answer's HTTP status */
        bool stream;               /* the answer is a stream relayed as it arrives */
        uint64_t t_start, t_first; /* mono us; t_first 0 until the first byte */
    } at;
    struct {          /* what the client has been sent */
        bool started; /* a streamed answer's head went out */
        tg_buf_t out; /* client bytes produced from one upstream read */
    } client;
    uv_timer_t backoff; /* before a retry */
    bool backoff_init;
    struct {        /* the response cache */
        bool on;    /* the route caches and the client allows reading or storing */
        bool store; /* store this answer (2xx, complete, not refused by no-store) */
        uint8_t key[TG_SHA256_LEN];
        tg_buf_t buf;                /* a streamed answer's client bytes, to store at its end */
        const dp_cache_entry_t *hit; /* borrowed while a cached answer is served */
    } cache;
    struct {                    /* a Responses request's stored state (rstate.h, rstore.h) */
        dp_rstate_wait_t *wait; /* fetching what it continues from */
        dp_rstore_op_t *put;    /* its final response being stored: the last bytes wait */
        tg_buf_t held;          /* the client bytes that wait */
        int end;                /* what runs when the put ends (HOLD_*) */
        int arg;                /* its status or exchange result */
        const char *error;      /* static: end_stream's usage error */
    } rs;
    dp_req_t *next_free; /* in the loop's cache of ended requests (req_alloc) */
};

enum { HOLD_RELAY = 1, HOLD_STREAM_END, HOLD_ANSWER, HOLD_STREAM_WRITE };

static const char *req_states[] = {"gate", "upstream", "streaming", "backoff", "storing", "done"};

static void req_set_state(dp_req_t *r, int st)
{
    tg_log_debug("dp_req", "state", "req_id=%.*s from=%s to=%s", (int)r->req_id_len, r->req_id,
                 req_states[r->state], req_states[st]);
    r->state = st;
}

/* Header lines a request's answers carry, built on the stack: the request's own (id, attempts,
 * target, cache), then the caller's. A line that does not fit is left out. */
typedef struct lines {
    char b[2048];
    size_t len;
} lines_t;

static void lines_put(lines_t *l, const char *p, size_t n)
{
    if (n <= sizeof(l->b) - l->len) {
        memcpy(l->b + l->len, p, n);
        l->len += n;
    }
}

static void lines_puts(lines_t *l, const char *s)
{
    lines_put(l, s, strlen(s));
}

/* The admission's x-ratelimit-* lines. */
static void lines_limits(lines_t *l, const dp_admit_t *a)
{
    l->len += dp_admit_headers(a, l->b + l->len, sizeof(l->b) - l->len);
}

static void lines_init(lines_t *l, const dp_req_t *r)
{
    char num[TG_FMT_U64_MAX];
    l->len = 0;
    lines_put(l, "x-request-id: ", 14);
    lines_put(l, r->req_id, r->req_id_len);
    lines_put(l, "\r\n", 2);
    if (r->at.n > 0) {
        lines_put(l, "x-tollgate-attempts: ", 21);
        lines_put(l, num, tg_fmt_u64(num, r->at.n));
        lines_put(l, "\r\n", 2);
    }
    if (r->at.target && r->at.n > 0) {
        lines_put(l, "x-tollgate-target: ", 19);
        lines_puts(l, r->at.target->provider->id);
        lines_put(l, "\r\n", 2);
    }
    if (r->cache.on)
        lines_puts(l, r->cache.hit ? "x-tollgate-cache: hit\r\n" : "x-tollgate-cache: miss\r\n");
}

static void respond(dp_req_t *r, int status, const char *ctype, const char *body, size_t len,
                    const lines_t *l)
{
    dp_head_t h = {status, ctype, l->b, l->len};
    (void)dp_conn_respond(r->conn, &h, body, len);
}

static void respond_error(dp_req_t *r, const tg_err_t *err, const char *extra)
{
    lines_t l;
    lines_init(&l, r);
    if (extra)
        lines_puts(&l, extra);
    (void)dp_conn_respond_error(r->conn, r->gate.endpoint, err, l.b, l.len);
}

/* ---- usage ---- */

static void record_usage(dp_req_t *r, int status, const char *error, int64_t *cost, int64_t *tokens)
{
    dp_worker_t *w = r->w;
    tg_usage_record_t rec;
    dp_usage_t usage;
    memset(&rec, 0, sizeof(rec));
    memset(&usage, 0, sizeof(usage));
    tg_uuid4(&w->rand, rec.id);
    rec.ts_ms = tg_wall_ms();
    rec.request_id = r->req_id;
    rec.request_id_len = r->req_id_len;
    rec.key_id = r->gate.key ? r->gate.key->id : NULL;
    rec.tenant_id = r->gate.key ? r->gate.key->tenant->id : NULL;
    rec.model = r->gate.route ? r->gate.route->alias : NULL;
    rec.model_len = r->gate.route ? strlen(r->gate.route->alias) : 0;
    rec.provider = r->at.target ? r->at.target->provider->id : NULL;
    rec.upstream_model = r->at.target ? r->at.target->model : NULL;
    rec.endpoint = r->gate.endpoint_name;
    rec.status = status;
    rec.streamed = r->body.stream;
    if (r->x_ready)
        usage = r->x.st.usage;
    rec.usage_source = "none";
    if (r->cache.hit) {
        /* an answer from the cache: what it used once, at no cost now */
        rec.provider = r->cache.hit->provider;
        rec.upstream_model = r->cache.hit->model;
        usage = r->cache.hit->usage;
        rec.usage_source = "cache";
    } else if (usage.present) {
        rec.usage_source = "provider";
    } else if (r->at.target && r->at.t_first && r->at.status >= 200 && r->at.status < 300) {
        /* the provider answered but never said what it used (a cut stream, a client that left):
         * estimate rather than record nothing, and say so. An error answer is not billed. */
        usage.prompt = dp_reqbody_estimate_prompt_tokens(r->body_len);
        usage.completion = r->x_ready ? r->x.st.content_events : 0;
        usage.total = usage.prompt + usage.completion;
        rec.usage_source = "estimated";
    }
    dp_usage_to_event(&rec, &usage);
    if (r->at.target && !r->cache.hit) {
        rec.cost_pusd = dp_cost_of(r->at.target, &usage);
        rec.unpriced = dp_cost_unpriced(r->at.target);
    }
    uint64_t now = tg_mono_us();
    rec.latency_ms = (double)(now - r->t_start) / 1000.0;
    rec.ttfb_ms = r->at.t_first ? (double)(r->at.t_first - r->t_start) / 1000.0 : -1;
    rec.error = error;
    *cost = rec.cost_pusd;
    *tokens = rec.total_tokens;
    size_t from = w->usage.len;
    if (tg_usage_event_append(&w->usage, &rec) != 0) {
        tg_log(TG_LOG_ERROR, "dp_req", "usage_lost", "req_id=%.*s", (int)r->req_id_len, r->req_id);
        return;
    }
    /* in the page cache at once (a SIGKILL keeps it); the batch below reaches the writer later */
    dp_usage_journal_append(w->id, w->usage.base + from, w->usage.len - from);
    if (++w->usage_count >= USAGE_BATCH_MAX)
        dp_req_flush_usage(w);
}

void dp_req_flush_usage(dp_worker_t *w)
{
    if (w->usage.len == 0)
        return;
    size_t len;
    char *p = tg_buf_detach(&w->usage, &len);
    w->usage_count = 0;
    dp_usage_sink_submit(p, len, w->id);
}

/* ---- request lifetime ---- */

size_t dp_req_id(dp_worker_t *w, const dp_http_msg_t *m, char *out)
{
    const tg_buf_t *rid = &m->request_id;
    bool ok = rid->len > 0 && rid->len <= 128;
    for (size_t i = 0; ok && i < rid->len; i++) {
        char ch = rid->base[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_' || ch == '.' || ch == ':';
    }
    if (ok) {
        memcpy(out, rid->base, rid->len);
        return rid->len;
    }
    tg_uuid4(&w->rand, out);
    return 36;
}

static void on_conn_event(dp_conn_watch_t *watch, int ev);

/* A request struct with its arena and output buffer, from the loop's cache of ended requests
 * when it has one (their arena's first chunk and the buffer's storage come along, so a warm loop
 * allocates none of the three), else new. Everything else is zero. */
static dp_req_t *req_alloc(dp_worker_t *w)
{
    dp_req_t *r = w->req_free;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return NULL;
        tg_pool_init(&r->pool, REQ_ARENA_CHUNK);
        tg_buf_init(&r->client.out, 8u << 20);
        return r;
    }
    w->req_free = r->next_free;
    w->nreq_free--;
    tg_pool_t pool = r->pool;
    tg_buf_t out = r->client.out;
    memset(r, 0, sizeof(*r));
    r->pool = pool;
    r->client.out = out;
    return r;
}

/* Frees a request's struct, or keeps it (arena reset, buffer emptied) for the next one. */
static void req_free(dp_req_t *r)
{
    dp_worker_t *w = r->w;
    if (w->nreq_free >= REQ_CACHE_MAX || r->client.out.cap > REQ_OUT_KEEP) {
        tg_pool_dispose(&r->pool);
        tg_buf_dispose(&r->client.out);
        free(r);
        return;
    }
    tg_pool_reset(&r->pool);
    tg_buf_reset(&r->client.out);
    r->next_free = w->req_free;
    w->req_free = r;
    w->nreq_free++;
}

void dp_req_cache_free(dp_worker_t *w)
{
    while (w->req_free) {
        dp_req_t *r = w->req_free;
        w->req_free = r->next_free;
        tg_pool_dispose(&r->pool);
        tg_buf_dispose(&r->client.out);
        free(r);
    }
    w->nreq_free = 0;
}

static dp_req_t *req_create(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg, const dp_gate_t *g)
{
    dp_req_t *r = req_alloc(w);
    if (!r)
        return NULL;
    r->w = w;
    r->conn = c;
    r->t_start = tg_mono_us();
    r->snap = g->snap ? tg_snap_ref((tg_snap_t *)g->snap) : NULL;
    r->gate = *g;
    r->gate.snap = r->snap;
    r->watch.cb = on_conn_event;
    tg_buf_init(&r->cache.buf, CACHE_STREAM_MAX);
    tg_buf_init(&r->rs.held, 64u << 20);
    r->req_id_len = dp_req_id(w, msg, r->req_id);
    dp_conn_watch(c, &r->watch);
    return r;
}

static void on_timer_closed(uv_handle_t *h)
{
    req_free(h->data);
}

static void req_destroy(dp_req_t *r)
{
    if (!r)
        return;
    dp_rstate_wait_free(r->rs.wait);
    dp_rstore_cancel(r->rs.put);
    tg_buf_dispose(&r->rs.held);
    dp_exchange_put(r->at.x);
    if (r->x_ready)
        dp_xlate_dispose(&r->x);
    dp_reqbody_dispose(&r->body);
    tg_buf_dispose(&r->cache.buf);
    tg_snap_unref(r->snap);
    if (r->backoff_init) {
        /* the handle lives inside r: free r once the loop has closed it */
        r->backoff.data = r;
        uv_close((uv_handle_t *)&r->backoff, on_timer_closed);
        return;
    }
    req_free(r);
}

static const char *label_model(const dp_req_t *r)
{
    return r->gate.route ? r->gate.route->alias : "";
}

static const char *label_provider(const dp_req_t *r)
{
    return r->cache.hit ? r->cache.hit->provider : r->at.target ? r->at.target->provider->id : "";
}

static uint64_t now_ms(const dp_req_t *r)
{
    return uv_now(&r->w->loop);
}

/* The request's outcome is decided: its usage record goes to the loop's journal and what
 * admission held is given back. The one place a hold is released; before the answer's last
 * bytes are written, so that a client holding an answer finds its record kept and its limits
 * free again. */
static void settle(dp_req_t *r, int status, const char *error)
{
    int64_t cost = 0, tokens = 0;
    record_usage(r, status, error, &cost, &tokens);
    dp_gate_release(&r->gate, cost, tokens);
}

/* The request is over: metrics, free; the connection reads its next request. */
static void finish(dp_req_t *r, int status)
{
    dp_worker_t *w = r->w;
    dp_conn_t *c = r->conn;
    dp_metrics_request(w->metrics, status, label_model(r), label_provider(r));
    if (r->at.n > 0)
        dp_metrics_upstream(w->metrics, (double)(tg_mono_us() - r->t_start) / 1e6);
    req_set_state(r, DP_REQ_DONE);
    req_destroy(r);
    if (c)
        dp_conn_end(c);
}

/* Answers with an error and ends the request. */
static void fail(dp_req_t *r, const tg_err_t *err, const char *extra)
{
    settle(r, err->status, err->ecode ? err->ecode : err->type);
    if (r->conn)
        respond_error(r, err, extra);
    finish(r, err->status);
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

static bool attempt_start(dp_req_t *r);
static void on_backoff(uv_timer_t *t);
static void client_drained(dp_req_t *r);

/* ---- response cache ---- */

/* The client's cache-control: no-store (do not keep this answer), no-cache (do not answer from
 * the cache), max-age=N (only answers at most N seconds old). */
static void read_cache_control(const tg_buf_t *h, bool *read, bool *store, int64_t *max_age_ms)
{
    size_t pos = 0;
    const char *t;
    size_t n;
    while (tg_list_next(h->base, h->len, &pos, &t, &n)) {
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
    }
}

/* Looks the request up when its route caches. true: answered from the cache (and freed). */
static bool cache_lookup(dp_req_t *r, const dp_http_msg_t *msg)
{
    dp_cache_t *c = r->w->cache;
    /* a response has an id of its own (and may be stored): never answered twice */
    if (!c || r->gate.route->cache_ttl_s == 0 || r->gate.endpoint == DP_EP_RESPONSES)
        return false;
    bool read = true, store = true;
    int64_t max_age = -1;
    read_cache_control(&msg->cache_control, &read, &store, &max_age);
    if (!read && !store)
        return false;
    const json_t *tree = dp_reqbody_json(&r->body);
    if (!tree || dp_cache_key(r->gate.key->tenant->id, r->gate.endpoint, r->gate.route->alias, tree,
                              r->cache.key) != 0)
        return false;
    r->cache.on = true;
    r->cache.store = store;
    if (!read)
        return false;
    int64_t now = (int64_t)now_ms(r);
    r->cache.hit = dp_cache_get(c, r->cache.key, now, max_age);
    if (!r->cache.hit)
        return false;
    lines_t l;
    char num[TG_FMT_U64_MAX];
    int64_t age = (now - r->cache.hit->stored_ms) / 1000;
    lines_init(&l, r);
    lines_put(&l, "age: ", 5);
    lines_put(&l, num, tg_fmt_u64(num, age > 0 ? (uint64_t)age : 0));
    lines_put(&l, "\r\n", 2);
    lines_limits(&l, &r->gate.hold);
    settle(r, 200, NULL);
    if (r->cache.hit->stream) {
        dp_head_t h = {200, "text/event-stream", l.b, l.len};
        if (dp_conn_start_chunked_with(r->conn, &h, r->cache.hit->body, r->cache.hit->len) == 0)
            (void)dp_conn_write_chunk(r->conn, NULL, 0);
    } else {
        respond(r, 200, "application/json", r->cache.hit->body, r->cache.hit->len, &l);
    }
    finish(r, 200);
    return true;
}

static void cache_store(dp_req_t *r, const char *body, size_t len)
{
    (void)dp_cache_put(r->w->cache, r->cache.key, body, len, r->body.stream,
                       r->at.target->provider->id, r->at.target->model, &r->x.st.usage,
                       (int64_t)now_ms(r), (int64_t)r->gate.route->cache_ttl_s * 1000);
}

/* ---- the attempt: an exchange with one target ---- */

static void backoff_arm(dp_req_t *r, uint64_t ms)
{
    if (!r->backoff_init) {
        uv_timer_init(&r->w->loop, &r->backoff);
        r->backoff_init = true;
    }
    r->backoff.data = r;
    uv_timer_start(&r->backoff, on_backoff, ms, 0);
}

/* The client's stream starts: its head, with the first chunk (len > 0) in the same write. */
static int start_client_stream(dp_req_t *r, const char *first, size_t len)
{
    lines_t l;
    lines_init(&l, r);
    lines_limits(&l, &r->gate.hold);
    dp_head_t h = {200, "text/event-stream", l.b, l.len};
    int rc = dp_conn_start_chunked_with(r->conn, &h, first, len);
    r->client.started = rc == 0;
    req_set_state(r, DP_REQ_STREAMING);
    return rc;
}

/* The answer's first byte: stream it to the client when the client asked for a stream and the
 * provider answers one; anything else (errors included) is buffered by the exchange. */
static bool on_x_head(void *ud, dp_exchange_t *x)
{
    dp_req_t *r = ud;
    r->at.t_first = tg_mono_us();
    r->at.status = dp_exchange_status(x);
    const char *ctype = dp_exchange_ctype(x);
    const char *want = dp_xlate_stream_content_type(&r->x);
    r->at.stream = r->body.stream && r->at.status >= 200 && r->at.status < 300 && ctype &&
                   strncmp(ctype, want, strlen(want)) == 0;
    return r->at.stream;
}

/* ---- a stored response's answer: its last bytes wait for the store (docs/responses.md) ---- */

static void on_stored(void *ud, int result, const char *rec, size_t len);
static void end_stream(dp_req_t *r, int result);
static void end_stream_write(dp_req_t *r, int status, const char *error, const tg_buf_t *out);
static void answer_write(dp_req_t *r, int status, const char *body, size_t body_len, bool as_sent);

/* The final response went to the store in this step (a Responses request with store true): the
 * bytes that end the answer wait in rs.held until the control plane (or the spool) has it, so
 * that a follow-up sent anywhere once the client holds the answer finds it. true: held, and
 * `end` runs when the put ends. */
static bool hold_for_store(dp_req_t *r, const char *p, size_t n, int end, int arg)
{
    dp_rstore_op_t *op = r->x_ready ? dp_xresp_take_put(&r->x) : NULL;
    if (!op)
        return false;
    tg_buf_reset(&r->rs.held);
    if (n > 0 && tg_buf_append(&r->rs.held, p, n) != 0) {
        dp_rstore_cancel(op); /* too large to hold: it leaves now, stored all the same */
        return false;
    }
    r->rs.put = op;
    r->rs.end = end;
    r->rs.arg = arg;
    dp_rstore_set_cb(op, on_stored, r);
    return true;
}

static void on_stored(void *ud, int result, const char *rec, size_t len)
{
    dp_req_t *r = ud;
    (void)rec;
    (void)len;
    r->rs.put = NULL;
    if (result == DP_RS_UNAVAILABLE)
        tg_log(TG_LOG_WARN, "dp_req", "response_not_stored", "req_id=%.*s reason=\"%s\"",
               (int)r->req_id_len, r->req_id, "neither the control plane nor the spool took it");
    int end = r->rs.end;
    r->rs.end = 0;
    if (end == HOLD_ANSWER) {
        answer_write(r, r->rs.arg, r->rs.held.base ? r->rs.held.base : "", r->rs.held.len, false);
    } else if (end == HOLD_STREAM_WRITE) {
        end_stream_write(r, r->rs.arg, r->rs.error, &r->rs.held);
    } else {
        if (r->conn && r->rs.held.len > 0)
            (void)dp_conn_write_chunk(r->conn, r->rs.held.base, r->rs.held.len);
        tg_buf_reset(&r->rs.held);
        if (end == HOLD_STREAM_END)
            end_stream(r, r->rs.arg);
        else if (r->at.x)
            dp_exchange_resume(r->at.x);
    }
}

/* Translates streamed bytes and writes what they complete to the client. */
static int relay(dp_req_t *r, const char *p, size_t len)
{
    tg_buf_t *out = &r->client.out;
    tg_buf_reset(out);
    int frc = dp_xlate_feed(&r->x, p, len, out);
    if (frc != 0 && !r->client.started)
        return frc; /* nothing reached the client yet: another target may still answer */
    /* the client's stream starts with the first bytes it can use: until then, a failure can
     * still go to another target */
    bool holding = r->rs.put || (frc == 0 && r->x_ready && dp_xresp_put_pending(&r->x));
    if (holding && out->len > 0 && !r->client.started && start_client_stream(r, NULL, 0) != 0)
        return TG_EIO; /* the head leaves now; the bytes wait for the store */
    if (r->rs.put)     /* already holding: these wait behind the held ones */
        return out->len > 0 && tg_buf_append(&r->rs.held, out->base, out->len) != 0 ? TG_EIO : frc;
    if (frc == 0 && hold_for_store(r, out->base ? out->base : "", out->len, HOLD_RELAY, 0))
        return 0;
    if (out->len > 0 && !r->client.started) {
        if (start_client_stream(r, out->base, out->len) != 0)
            return TG_EIO;
    } else if (out->len > 0 && dp_conn_write_chunk(r->conn, out->base, out->len) != 0) {
        /* all events completed by this read leave together, in this loop iteration */
        return TG_EIO;
    }
    if (frc != 0)
        return frc; /* the events completed before the unreadable bytes went out */
    if (r->cache.store && out->len > 0 && tg_buf_append(&r->cache.buf, out->base, out->len) != 0)
        r->cache.store = false; /* too long to keep */
    return 0;
}

/* A chat stream the client already has can no longer be retried or fall back, and its events
 * are translated without the request: its bytes are freed rather than held for the stream's
 * minutes. (A Responses request stores its input at the end; the Messages pivot points into
 * the body.) */
static void release_request_body(dp_req_t *r)
{
    r->body_released = true;
    if (r->gate.endpoint == DP_EP_CHAT && !r->x.resp && !r->x.via_messages)
        dp_reqbody_release(&r->body);
}

static int on_x_data(void *ud, const char *p, size_t len)
{
    dp_req_t *r = ud;
    if (r->client.started && !r->body_released)
        release_request_body(r);
    if (!r->conn)
        return TG_ECLOSED;
    if (r->rs.put)
        return DP_X_PAUSE; /* on_stored resumes once the held end is out */
    if (r->client.started && dp_conn_write_queue(r->conn) > DP_WQ_HIGH)
        return DP_X_PAUSE; /* client_drained resumes; the exchange delivers this again */
    /* what this read completes (events, the end, the terminator when the answer ends in the
     * same read) leaves in one write at the end of the loop's I/O */
    dp_conn_cork(r->conn);
    return relay(r, p, len) != 0 ? TG_EIO : 0;
}

static void client_drained(dp_req_t *r)
{
    if (r->at.x)
        dp_exchange_resume(r->at.x);
}

static void map_error(dp_req_t *r, int result, tg_err_t *err)
{
    const char *prov = r->at.target->provider->id;
    if (result == DP_X_TOO_LARGE) {
        tg_err_set(err, TG_EUPSTREAM, 502, "the answer of provider \"%s\" is too large", prov);
        tg_err_code(err, "upstream_too_large");
    } else if (result == DP_X_TIMEOUT) {
        tg_err_set(err, TG_ETIMEOUT, 504, "provider \"%s\" did not answer in time", prov);
        tg_err_code(err, "upstream_timeout");
    } else if (result == DP_X_REFUSED) {
        tg_err_set(err, TG_EUPSTREAM, 502, "provider \"%s\" sent an answer that could not be read",
                   prov);
        tg_err_code(err, "upstream_bad_response");
    } else {
        tg_err_set(err, TG_EUPSTREAM, 502, "could not reach provider \"%s\": %s", prov,
                   dp_exchange_reason(r->at.x));
        tg_err_code(err, "upstream_unreachable");
    }
}

/* Drops the finished attempt's exchange so that another can start. */
static void attempt_reset(dp_req_t *r)
{
    dp_exchange_put(r->at.x);
    r->at.x = NULL;
    tg_buf_reset(&r->client.out);
    r->at.status = 0;
    r->at.stream = false;
    r->at.t_first = 0;
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
    if (r->at.n >= ATTEMPTS_MAX)
        return false;
    const tg_retry_t *p = &r->gate.plan[r->at.pos].route->retry;
    if (r->at.tries < p->max_attempts) {
        uint64_t cap = (uint64_t)p->backoff_ms << (r->at.tries - 1 < 16 ? r->at.tries - 1 : 16);
        cap = cap > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : cap;
        uint64_t delay = cap ? tg_rand_next(&r->w->rand) % (cap + 1) : 0;
        bool move_on = false;
        const char *ra_s = dp_exchange_retry_after(r->at.x);
        if (ra_s[0]) {
            uint64_t ra = 0;
            for (const char *d = ra_s; *d && ra < 1000000000u; d++) /* digits only; saturates */
                ra = ra * 10 + (uint64_t)(*d - '0');
            ra *= 1000;
            move_on = ra > BACKOFF_CAP_MS;
            delay = ra > delay ? ra : delay;
        }
        if (!move_on) {
            attempt_reset(r);
            req_set_state(r, DP_REQ_BACKOFF);
            backoff_arm(r, delay);
            return true;
        }
    }
    size_t next = dp_gate_next_available(&r->gate, r->at.pos + 1);
    if (next >= r->gate.nplan)
        return false;
    attempt_reset(r);
    r->at.pos = next;
    r->at.tries = 0;
    req_set_state(r, DP_REQ_BACKOFF);
    backoff_arm(r, 0); /* from the loop, not from inside this exchange's callback */
    return true;
}

/* A streamed answer that reached the client ends: with an error event if it broke. */
static void end_stream(dp_req_t *r, int result)
{
    tg_err_t err;
    int status = 200;
    const char *error = NULL;
    tg_buf_t *out = &r->client.out;
    tg_err_clear(&err);
    if (r->rs.put) { /* the held end goes first: on_stored comes back here */
        r->rs.end = HOLD_STREAM_END;
        r->rs.arg = result;
        req_set_state(r, DP_REQ_STORING);
        return;
    }
    tg_buf_reset(out);
    if (dp_xlate_end(&r->x, result == DP_X_OK, out) != 0)
        tg_buf_reset(out);
    if (result != DP_X_OK) {
        map_error(r, result, &err);
        tg_log(TG_LOG_WARN, "dp_req", "stream_broken", "req_id=%.*s provider=%s reason=\"%s\"",
               (int)r->req_id_len, r->req_id, r->at.target->provider->id,
               dp_exchange_reason(r->at.x));
        /* an error event, as OpenAI and Anthropic send mid-stream; the SDKs raise it */
        if (dp_xlate_fail_event(&r->x, &err, out) != 0)
            tg_buf_reset(out);
        status = err.status;
        error = err.ecode;
    }
    if (hold_for_store(r, out->base ? out->base : "", out->len, HOLD_STREAM_WRITE, status)) {
        r->rs.error = error;
        req_set_state(r, DP_REQ_STORING);
        return;
    }
    end_stream_write(r, status, error, out);
}

static void end_stream_write(dp_req_t *r, int status, const char *error, const tg_buf_t *out)
{
    settle(r, status, error);
    if (r->conn) {
        if (!r->client.started) {
            if (start_client_stream(r, out->base, out->len) == 0)
                (void)dp_conn_write_chunk(r->conn, NULL, 0);
        } else {
            (void)dp_conn_end_chunked(r->conn, out->base, out->len);
        }
    }
    if (status == 200 && r->cache.store && r->x.st.done &&
        tg_buf_append(&r->cache.buf, out->base ? out->base : "", out->len) == 0)
        cache_store(r, r->cache.buf.base, r->cache.buf.len);
    finish(r, status);
}

/* A buffered answer: translated for the client and written with its length. */
static void answer(dp_req_t *r, int status)
{
    tg_err_t err;
    const char *body = NULL;
    size_t body_len = 0, raw_len;
    const char *raw = dp_exchange_answer(r->at.x, &raw_len);
    tg_buf_t *out = &r->client.out;
    tg_buf_reset(out);
    if (dp_xlate_response(&r->x, status, raw, raw_len, out, &body, &body_len) < 0) {
        if (status >= 200 && status < 300) {
            tg_err_set(&err, TG_EUPSTREAM, 502, "the answer of provider \"%s\" could not be read",
                       r->at.target->provider->id);
            tg_err_code(&err, "upstream_bad_response");
            fail(r, &err, NULL);
            return;
        }
        body = raw; /* an error the adapter could not read: as the provider sent it */
        body_len = raw_len;
    }
    if (hold_for_store(r, body ? body : "", body_len, HOLD_ANSWER, status)) {
        req_set_state(r, DP_REQ_STORING);
        return;
    }
    answer_write(r, status, body, body_len, body == raw);
}

static void answer_write(dp_req_t *r, int status, const char *body, size_t body_len, bool as_sent)
{
    settle(r, status, status >= 400 ? "upstream_error" : NULL);
    if (r->conn) {
        const char *ctype = NULL;
        const char *ra = dp_exchange_retry_after(r->at.x);
        lines_t l;
        lines_init(&l, r);
        lines_limits(&l, &r->gate.hold);
        if (ra[0]) {
            lines_put(&l, "retry-after: ", 13);
            lines_puts(&l, ra);
            lines_put(&l, "\r\n", 2);
        }
        if (as_sent)
            ctype = dp_exchange_ctype(r->at.x);
        if (!ctype || strpbrk(ctype, "\r\n"))
            ctype = "application/json";
        respond(r, status, ctype, body ? body : "", body_len, &l);
    }
    if (status >= 200 && status < 300 && r->cache.store)
        cache_store(r, body ? body : "", body_len);
    finish(r, status);
}

static void on_x_done(void *ud, int result)
{
    dp_req_t *r = ud;
    dp_worker_t *w = r->w;
    tg_err_t err;
    tg_err_clear(&err);
    atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_relaxed);
    int status = dp_exchange_status(r->at.x);
    r->at.status = status;
    bool failed = result != DP_X_OK || status >= 500 || status == 429;
    double ttfb = r->at.t_first ? (double)(r->at.t_first - r->at.t_start) / 1000.0 : -1;
    dp_health_end(w->health, r->at.ts, !failed, ttfb, now_ms(r));
    if (r->client.started || (r->at.stream && result == DP_X_OK)) {
        end_stream(r, result);
        return;
    }
    bool retryable = result != DP_X_OK
                         ? result != DP_X_TOO_LARGE
                         : tg_retry_on_status(&r->gate.plan[r->at.pos].route->retry, status);
    if (result != DP_X_OK)
        tg_log(TG_LOG_WARN, "dp_req", "upstream_failed",
               "req_id=%.*s provider=%s attempt=%u reason=\"%s\"", (int)r->req_id_len, r->req_id,
               r->at.target->provider->id, r->at.n, dp_exchange_reason(r->at.x));
    else if (failed)
        tg_log(TG_LOG_INFO, "dp_req", "upstream_error",
               "req_id=%.*s provider=%s attempt=%u status=%d", (int)r->req_id_len, r->req_id,
               r->at.target->provider->id, r->at.n, status);
    if (retryable && r->conn && retry_or_fallback(r))
        return;
    if (result != DP_X_OK) {
        map_error(r, result, &err);
        fail(r, &err, NULL);
        return;
    }
    answer(r, status);
}

static const dp_exchange_cbs_t exchange_cbs = {on_x_head, on_x_data, on_x_done};

/* Starts an attempt on plan entry r->at.pos. A target that cannot take the request (the adapter
 * cannot express it, or curl refuses) moves on to the next. false: the request was answered and
 * freed. */
static bool attempt_start(dp_req_t *r)
{
    tg_err_t err;
    tg_err_clear(&err);
    for (;;) {
        const dp_plan_entry_t *pe = &r->gate.plan[r->at.pos];
        const tg_route_t *rt = pe->route;
        r->at.target = pe->target;
        r->at.ts = pe->ts;
        r->at.n++;
        r->at.tries++;
        r->at.t_start = tg_mono_us();
        req_set_state(r, DP_REQ_UPSTREAM);
        int rc = TG_ENOMEM;
        r->at.x = dp_exchange_get(r->w->up);
        if (!r->at.x)
            tg_err_set(&err, TG_ENOMEM, 503, "could not start the upstream request");
        else
            rc = dp_xlate_build(&r->x, pe->target->provider, pe->target->model, r->req_id,
                                tg_wall_ms() / 1000, dp_exchange_add_header, r->at.x,
                                dp_exchange_url(r->at.x), dp_exchange_body(r->at.x), &err);
        if (rc == 0) {
            dp_exchange_limits_t lim = {r->req_id,
                                        r->req_id_len,
                                        pe->target->provider->id,
                                        rt->connect_timeout_ms,
                                        rt->timeout_ms,
                                        rt->first_byte_timeout_ms,
                                        rt->idle_timeout_ms};
            rc = dp_exchange_start(r->at.x, &lim, &exchange_cbs, r, &err);
        }
        if (rc == 0) {
            atomic_fetch_add_explicit(&r->w->inflight, 1, memory_order_relaxed);
            dp_health_start(r->w->health, r->at.ts, now_ms(r));
            return true;
        }
        tg_log(TG_LOG_WARN, "dp_req", "attempt_not_started",
               "req_id=%.*s provider=%s reason=\"%s\"", (int)r->req_id_len, r->req_id,
               pe->target->provider->id, err.msg);
        attempt_reset(r);
        size_t next = dp_gate_next_available(&r->gate, r->at.pos + 1);
        if (next >= r->gate.nplan || r->at.n >= ATTEMPTS_MAX) {
            fail(r, &err, NULL);
            return false;
        }
        r->at.pos = next;
        r->at.tries = 0;
    }
}

/* The client went away (or the drain grace ran out): cancel the upstream, record usage, free
 * the request. Never runs inside an exchange's callback: the connection closes from its own. */
static void client_gone(dp_req_t *r)
{
    dp_worker_t *w = r->w;
    r->conn = NULL;
    if (r->backoff_init)
        uv_timer_stop(&r->backoff);
    if (r->at.x && (r->state == DP_REQ_UPSTREAM || r->state == DP_REQ_STREAMING)) {
        /* cancel at once: the provider stops generating (and billing) */
        dp_exchange_cancel(r->at.x);
        atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_relaxed);
        dp_health_cancel(w->health, r->at.ts);
    }
    tg_log(TG_LOG_INFO, "dp_req", "client_gone", "req_id=%.*s streamed=%d", (int)r->req_id_len,
           r->req_id, r->client.started);
    dp_metrics_request(w->metrics, 499, label_model(r), label_provider(r));
    settle(r, 499, "client_closed_request");
    req_set_state(r, DP_REQ_DONE);
    req_destroy(r);
}

static void on_conn_event(dp_conn_watch_t *watch, int ev)
{
    dp_req_t *r = (dp_req_t *)((char *)watch - offsetof(dp_req_t, watch));
    if (ev == DP_CONN_EV_GONE)
        client_gone(r);
    else if (ev == DP_CONN_EV_DRAINED)
        client_drained(r);
}

static void req_begin(dp_req_t *r, bool unavailable);

static void on_state_ready(void *ud, bool unavailable)
{
    req_begin(ud, unavailable);
}

void dp_req_start(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg, const dp_gate_t *g)
{
    tg_err_t err;
    char ra[32];
    tg_err_clear(&err);
    dp_req_t *r = req_create(w, c, msg, g);
    if (!r) {
        tg_err_set(&err, TG_ENOMEM, 503, "out of memory");
        (void)dp_conn_respond_error(c, g->endpoint, &err, NULL, 0);
        dp_conn_end(c);
        return;
    }
    r->body_len = msg->body.len;
    /* the body takes the parser's buffer (no copy) */
    if (dp_reqbody_parse_take(&r->body, r->gate.endpoint, &msg->body, &err) != 0) {
        fail(r, &err, NULL);
        return;
    }
    r->gate.pool = &r->pool;
    if (dp_gate_route(&r->gate, &r->body, &msg->fallbacks, r->req_id, r->req_id_len, &err) != 0) {
        fail(r, &err, NULL);
        return;
    }
    if (dp_gate_admit(&r->gate, r->body_len, r->body.max_tokens, &err, ra, sizeof(ra)) != 0) {
        lines_t l;
        l.len = 0;
        lines_limits(&l, &r->gate.hold);
        if (ra[0]) {
            lines_put(&l, "retry-after: ", 13);
            lines_puts(&l, ra);
            lines_put(&l, "\r\n", 2);
        }
        lines_put(&l, "", 1); /* NUL for fail's extra */
        fail(r, &err, l.b);
        return;
    }
    if (cache_lookup(r, msg))
        return;
    dp_xlate_init(&r->x, r->gate.endpoint, &r->body, r->body.include_usage);
    r->x_ready = true;
    /* the last use of msg: it is the connection's, gone at dp_conn_end or when the client
     * leaves, so what the attempts need is copied into the request's arena */
    if (r->gate.endpoint == DP_EP_MESSAGES && beta_ok(&msg->anthropic_beta))
        r->x.anthropic_beta =
            tg_pool_strndup(&r->pool, msg->anthropic_beta.base, msg->anthropic_beta.len);
    if (r->gate.endpoint == DP_EP_RESPONSES) {
        /* what it continues from may have to come from the control plane first */
        const json_t *tree = dp_reqbody_json(&r->body);
        int prc = tree ? dp_rstate_prepare(w, r->gate.key->tenant->id, tree, on_state_ready, r,
                                           &r->rs.wait)
                       : 0;
        if (prc == 1)
            return; /* on_state_ready goes on */
        if (prc < 0) {
            tg_err_set(&err, TG_ENOMEM, 503, "out of memory");
            fail(r, &err, NULL);
            return;
        }
    }
    req_begin(r, false);
}

/* The request's state is on this worker (or never had to be fetched): its first attempt. */
static void req_begin(dp_req_t *r, bool unavailable)
{
    tg_err_t err;
    tg_err_clear(&err);
    if (r->gate.endpoint == DP_EP_RESPONSES &&
        dp_xresp_begin(&r->x, r->w, r->gate.key->tenant->id, r->gate.key->id, NULL, &err) != 0) {
        if (unavailable && err.ecode && strcmp(err.ecode, "previous_response_not_found") == 0) {
            tg_err_clear(&err);
            tg_err_set(&err, TG_EUPSTREAM, 503,
                       "stored responses cannot be reached now; retry shortly");
        }
        fail(r, &err, NULL);
        return;
    }
    dp_rstate_wait_free(r->rs.wait); /* resolved: what it fetched is no longer needed */
    r->rs.wait = NULL;
    /* every circuit open: try the plan anyway rather than refuse outright (Envoy's panic
     * threshold does the same); a fallback is what makes a dead provider cost nothing */
    r->at.pos = dp_gate_next_available(&r->gate, 0);
    if (r->at.pos >= r->gate.nplan)
        r->at.pos = 0;
    (void)attempt_start(r);
}
