/* proxy.c: one request from parse to usage record: routes the path, authenticates the key,
 * resolves the model alias, builds the upstream exchange through the provider's table, relays
 * the answer (buffered or streamed) and records what it cost. A request owns its parsed message,
 * its curl handle and its buffers, and holds a snapshot ref for its whole life, so a reload never
 * changes config under it. Loop thread only. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "ledger.h"
#include "metrics.h"
#include "provider.h"
#include "reqbody.h"
#include "sse.h"
#include "tg_log.h"
#include "tg_time.h"
#include "upstream.h"
#include "usage.h"
#include "usage_sink.h"

#include "tg_banned.h"

#define USAGE_BATCH_MAX 1000

enum {
    DP_REQ_UPSTREAM = 0, /* waiting for the provider */
    DP_REQ_STREAMING,    /* relaying events */
    DP_REQ_DONE,
};

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
    const tg_route_t *route;
    const tg_target_t *target;
    const dp_provider_ops_t *ops;
    CURL *easy;
    struct curl_slist *headers;
    tg_buf_t url;
    tg_buf_t up_body;
    tg_buf_t resp; /* a non-streamed answer, or a streamed request's non-SSE answer */
    tg_buf_t out;  /* client bytes produced from one upstream read */
    dp_stream_state_t st;
    long up_status;
    bool up_sse;
    bool stream_started;
    bool paused;
    bool too_large;
    int state;
    uint64_t t_start;
    uint64_t t_first;
    char retry_after[32];
    dp_admit_t adm; /* what admission holds for this request (rate limits, budgets) */
    char req_id[132];
    size_t req_id_len;
};

static const char *req_states[] = {"upstream", "streaming", "done"};

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
                      long long content_length, const char *req_id, size_t req_id_len,
                      const char *extra)
{
    int rc = tg_buf_appendf(h, "HTTP/1.1 %d %s\r\ncontent-type: %s\r\n", status,
                            reason_phrase(status), ctype);
    if (rc == 0)
        rc = content_length >= 0
                 ? tg_buf_appendf(h, "content-length: %lld\r\n", content_length)
                 : tg_buf_appendf(h, "transfer-encoding: chunked\r\ncache-control: no-cache\r\n");
    if (rc == 0 && req_id_len)
        rc = tg_buf_appendf(h, "x-request-id: %.*s\r\n", (int)req_id_len, req_id);
    if (rc == 0 && extra)
        rc = tg_buf_appendf(h, "%s", extra);
    if (rc == 0 && dp_conn_must_close(c))
        rc = tg_buf_appendf(h, "connection: close\r\n");
    if (rc == 0)
        rc = tg_buf_append(h, "\r\n", 2);
    return rc;
}

static void respond(dp_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                    const char *req_id, size_t req_id_len, const char *extra)
{
    char small[512];
    tg_buf_t h = TG_BUF_INIT(16384);
    if (build_head(&h, c, status, ctype, (long long)len, req_id, req_id_len, extra) == 0)
        (void)dp_conn_write(c, h.base, h.len, body, len);
    tg_buf_dispose(&h);
    (void)small;
}

static int error_body(tg_buf_t *b, const tg_err_t *err)
{
    int rc = tg_buf_append(b, "{\"error\":{\"message\":", 20);
    if (rc == 0)
        rc = tg_buf_append_json_str(b, err->msg, strlen(err->msg));
    if (rc == 0)
        rc = tg_buf_appendf(b, ",\"type\":\"%s\",\"param\":", err->type ? err->type : "api_error");
    if (rc == 0)
        rc = err->param ? tg_buf_appendf(b, "\"%s\"", err->param) : tg_buf_append(b, "null", 4);
    if (rc == 0)
        rc = tg_buf_append(b, ",\"code\":", 8);
    if (rc == 0)
        rc = err->ecode ? tg_buf_appendf(b, "\"%s\"", err->ecode) : tg_buf_append(b, "null", 4);
    if (rc == 0)
        rc = tg_buf_append(b, "}}", 2);
    return rc;
}

static void respond_error(dp_conn_t *c, const tg_err_t *err, const char *req_id, size_t req_id_len,
                          const char *extra)
{
    tg_buf_t b = TG_BUF_INIT(4096);
    if (error_body(&b, err) == 0)
        respond(c, err->status, "application/json", b.base, b.len, req_id, req_id_len, extra);
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
    rec.usage = r->st.usage;
    rec.usage_source = "none";
    if (rec.usage.present) {
        rec.usage_source = "provider";
    } else if (r->target && r->t_first) {
        /* the provider answered but never said what it used (a cut stream, a client that left):
         * estimate rather than record nothing, and say so */
        rec.usage.prompt = dp_reqbody_estimate_prompt_tokens(r->body_len);
        rec.usage.completion = r->st.content_events;
        rec.usage.total = rec.usage.prompt + rec.usage.completion;
        rec.usage_source = "estimated";
    }
    if (r->target)
        rec.cost_pusd = tg_price_cost(&r->target->price, rec.usage.prompt, rec.usage.cached,
                                      rec.usage.completion);
    uint64_t now = tg_mono_us();
    rec.latency_ms = (double)(now - r->t_start) / 1000.0;
    rec.ttfb_ms = r->t_first ? (double)(r->t_first - r->t_start) / 1000.0 : -1;
    rec.error = error;
    if (r->key)
        dp_ledger_finish(r->key, &r->adm, rec.cost_pusd, rec.usage.total);
    if (dp_usage_record_append(&w->usage, &rec) != 0) {
        tg_log(TG_LOG_ERROR, "dp_proxy", "usage_lost", "req_id=%.*s", (int)r->req_id_len,
               r->req_id);
        return;
    }
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
    dp_usage_sink_submit(p, len);
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
    dp_stream_state_init(&r->st, 0, false);
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

static void req_destroy(dp_req_t *r)
{
    if (!r)
        return;
    if (r->easy)
        easy_put(r->w, r->easy);
    curl_slist_free_all(r->headers);
    dp_http_msg_dispose(&r->msg);
    dp_reqbody_dispose(&r->body);
    tg_buf_dispose(&r->url);
    tg_buf_dispose(&r->up_body);
    tg_buf_dispose(&r->resp);
    tg_buf_dispose(&r->out);
    dp_stream_state_dispose(&r->st);
    tg_snap_unref(r->snap);
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
    respond_error(r->conn, err, r->req_id, r->req_id_len, extra);
    dp_metrics_request(r->w->metrics, err->status, label_model(r), label_provider(r));
    if (record)
        record_usage(r, err->status, err->ecode ? err->ecode : err->type);
    req_destroy(r);
}

static void fail_request(dp_req_t *r, const tg_err_t *err, bool record)
{
    fail_request_with(r, err, record, NULL);
}

/* ---- authentication and routing ---- */

static int authenticate(dp_req_t *r, tg_err_t *err)
{
    const tg_buf_t *a = &r->msg.authorization;
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
    } else if (r->msg.api_key.len > 0) {
        key = r->msg.api_key.base;
        keylen = r->msg.api_key.len;
    }
    if (!key || keylen == 0) {
        tg_err_set(err, TG_EAUTH, 401,
                   "no API key provided: send \"Authorization: Bearer <key>\" or \"x-api-key\"");
        tg_err_code(err, "invalid_api_key");
        return TG_EAUTH;
    }
    uint8_t h[TG_SHA256_LEN];
    tg_sha256(key, keylen, h);
    r->key = tg_snap_find_key(r->snap, h);
    if (!r->key) {
        tg_err_set(err, TG_EAUTH, 401, "incorrect API key provided");
        tg_err_code(err, "invalid_api_key");
        return TG_EAUTH;
    }
    if (r->key->expires_at && r->key->expires_at <= tg_wall_ms() / 1000) {
        r->key = NULL;
        tg_err_set(err, TG_EAUTH, 401, "the API key has expired");
        tg_err_code(err, "expired_api_key");
        return TG_EAUTH;
    }
    return 0;
}

static const tg_target_t *pick_target(dp_req_t *r)
{
    const tg_route_t *rt = r->route;
    if (rt->ntargets == 1)
        return &rt->targets[0];
    uint64_t total = 0;
    for (size_t i = 0; i < rt->ntargets; i++)
        total += rt->targets[i].weight;
    uint64_t x = tg_rand_next(&r->w->rand) % total;
    for (size_t i = 0; i < rt->ntargets; i++) {
        if (x < rt->targets[i].weight)
            return &rt->targets[i];
        x -= rt->targets[i].weight;
    }
    return &rt->targets[rt->ntargets - 1];
}

/* Rate limits and budgets of the key and its tenant. The worst case assumes one token per body
 * byte (a byte-level BPE token covers at least one byte) and max_tokens, or
 * DP_WORST_COMPLETION_TOKENS without it. On refusal the request is answered and freed. */
static int admit(dp_req_t *r, tg_err_t *err)
{
    int64_t max_out = r->body.max_tokens > 0 ? r->body.max_tokens : 0;
    int64_t worst_out = r->endpoint == DP_EP_EMBEDDINGS ? 0
                        : max_out > 0                   ? max_out
                                                        : DP_WORST_COMPLETION_TOKENS;
    int64_t worst = tg_price_cost(&r->target->price, (int64_t)r->body_len, 0, worst_out);
    int64_t est = dp_reqbody_estimate_prompt_tokens(r->body_len) + max_out;
    char ra[32];
    if (dp_ledger_admit(r->key, worst, est, &r->adm, err, ra, sizeof(ra)) == 0)
        return 0;
    char extra[512];
    snprintf(extra, sizeof(extra), "%s%s%s%s", r->adm.headers, ra[0] ? "retry-after: " : "", ra,
             ra[0] ? "\r\n" : "");
    fail_request_with(r, err, true, extra);
    return TG_ERATE;
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

static int start_client_stream(dp_req_t *r)
{
    tg_buf_t h = TG_BUF_INIT(16384);
    char extra[768];
    snprintf(extra, sizeof(extra), "x-tollgate-target: %s\r\n%s", r->target->provider->id,
             r->adm.headers);
    int rc = build_head(&h, r->conn, 200, "text/event-stream", -1, r->req_id, r->req_id_len, extra);
    if (rc == 0)
        rc = dp_conn_write(r->conn, h.base, h.len, NULL, 0);
    tg_buf_dispose(&h);
    r->stream_started = rc == 0;
    req_set_state(r, DP_REQ_STREAMING);
    return rc;
}

static size_t on_up_data(char *p, size_t size, size_t n, void *ud)
{
    dp_req_t *r = ud;
    size_t len = size * n;
    if (!r->t_first) {
        char *ctype = NULL;
        r->t_first = tg_mono_us();
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->up_status);
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
        const char *want = r->ops->stream_content_type;
        r->up_sse = r->body.stream && r->up_status >= 200 && r->up_status < 300 && ctype &&
                    strncmp(ctype, want, strlen(want)) == 0;
    }
    if (!r->conn)
        return 0; /* the client is gone: abort */
    if (!r->up_sse) {
        if (tg_buf_append(&r->resp, p, len) != 0) {
            r->too_large = true;
            return 0;
        }
        return len;
    }
    if (!r->stream_started && start_client_stream(r) != 0)
        return 0;
    if (dp_conn_write_queue(r->conn) > DP_WQ_HIGH) {
        r->paused = true; /* dp_proxy_client_drained unpauses; curl delivers this again */
        return CURL_WRITEFUNC_PAUSE;
    }
    tg_buf_reset(&r->out);
    if (r->ops->stream_feed(&r->st, p, len, &r->out) != 0)
        return 0;
    /* all events completed by this read leave together, in this loop iteration */
    if (r->out.len > 0 && dp_conn_write_chunk(r->conn, r->out.base, r->out.len) != 0)
        return 0;
    return len;
}

void dp_proxy_client_drained(dp_req_t *r)
{
    if (r->paused && r->easy) {
        r->paused = false;
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
    } else {
        tg_err_set(err, TG_EUPSTREAM, 502, "could not reach provider \"%s\": %s", prov,
                   curl_easy_strerror(rc));
        tg_err_code(err, "upstream_unreachable");
    }
}

static void finish(dp_req_t *r, int status, const char *error)
{
    dp_worker_t *w = r->w;
    dp_conn_t *c = r->conn;
    atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_relaxed);
    dp_metrics_request(w->metrics, status, label_model(r), label_provider(r));
    dp_metrics_upstream(w->metrics, (double)(tg_mono_us() - r->t_start) / 1e6);
    record_usage(r, status, error);
    req_set_state(r, DP_REQ_DONE);
    req_destroy(r);
    if (c)
        dp_conn_request_done(c);
}

static void on_up_done(dp_upstream_xfer_t *x, CURLcode rc)
{
    dp_req_t *r = (dp_req_t *)x;
    tg_err_t err;
    tg_err_clear(&err);
    if (!r->t_first) /* no body at all: still read the status */
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->up_status);
    if (r->stream_started) {
        /* the client has a 200 already: end the stream, with an error event if it broke */
        int status = 200;
        const char *error = NULL;
        tg_buf_reset(&r->out);
        if (rc != CURLE_OK) {
            map_curl_error(r, rc, &err);
            tg_log(TG_LOG_WARN, "dp_proxy", "stream_broken",
                   "req_id=%.*s provider=%s reason=\"%s\"", (int)r->req_id_len, r->req_id,
                   r->target->provider->id, curl_easy_strerror(rc));
            /* an error event, as OpenAI sends mid-stream; the SDKs raise it */
            if (tg_buf_append(&r->out, "data: ", 6) != 0 || error_body(&r->out, &err) != 0 ||
                tg_buf_append(&r->out, "\n\n", 2) != 0)
                tg_buf_reset(&r->out);
            status = err.status;
            error = err.ecode;
        } else if (r->ops->stream_end(&r->st, true, &r->out) != 0) {
            tg_buf_reset(&r->out);
        }
        if (r->conn) {
            if (r->out.len)
                (void)dp_conn_write_chunk(r->conn, r->out.base, r->out.len);
            (void)dp_conn_write_chunk(r->conn, NULL, 0);
        }
        finish(r, status, error);
        return;
    }
    if (rc != CURLE_OK) {
        map_curl_error(r, rc, &err);
        tg_log(TG_LOG_WARN, "dp_proxy", "upstream_failed", "req_id=%.*s provider=%s reason=\"%s\"",
               (int)r->req_id_len, r->req_id, r->target->provider->id, curl_easy_strerror(rc));
        if (r->conn)
            respond_error(r->conn, &err, r->req_id, r->req_id_len, NULL);
        finish(r, err.status, err.ecode);
        return;
    }
    int status = (int)r->up_status;
    const char *body = r->resp.base;
    size_t body_len = r->resp.len;
    tg_buf_reset(&r->out);
    int xr =
        r->ops->response(&r->st, status, r->resp.base ? r->resp.base : "", r->resp.len, &r->out);
    if (xr == DP_RESP_OUT) {
        body = r->out.base;
        body_len = r->out.len;
    } else if (xr < 0 && status >= 200 && status < 300) {
        tg_err_set(&err, TG_EUPSTREAM, 502, "the answer of provider \"%s\" could not be read",
                   r->target->provider->id);
        tg_err_code(&err, "upstream_bad_response");
        if (r->conn)
            respond_error(r->conn, &err, r->req_id, r->req_id_len, NULL);
        finish(r, err.status, err.ecode);
        return;
    }
    if (r->conn) {
        char *ctype = NULL;
        char extra[768];
        int n = snprintf(extra, sizeof(extra), "x-tollgate-target: %s\r\n%s",
                         r->target->provider->id, r->adm.headers);
        if (r->retry_after[0] && n > 0 && (size_t)n < sizeof(extra))
            snprintf(extra + n, sizeof(extra) - (size_t)n, "retry-after: %s\r\n", r->retry_after);
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
        if (xr == DP_RESP_OUT || !ctype || strpbrk(ctype, "\r\n"))
            ctype = "application/json";
        respond(r->conn, status, ctype, body, body_len, r->req_id, r->req_id_len, extra);
    }
    finish(r, status, status >= 400 ? "upstream_error" : NULL);
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

static int start_upstream(dp_req_t *r, tg_err_t *err)
{
    const dp_opts_t *o = r->w->opts;
    dp_call_t call = {.provider = r->target->provider,
                      .model = r->target->model,
                      .endpoint = r->endpoint,
                      .body = &r->body,
                      .request_id = r->req_id,
                      .now_s = tg_wall_ms() / 1000};
    r->st.endpoint = r->endpoint;
    r->st.model = r->target->model;
    r->st.request_id = r->req_id;
    r->st.created = call.now_s;
    int rc = r->ops->build(&call, add_header, r, &r->url, &r->up_body, err);
    if (rc != 0) {
        if (err->status == 0)
            tg_err_set(err, rc, 500, "could not build the upstream request");
        return rc;
    }
    r->st.client_wants_usage = r->body.include_usage;
    r->easy = easy_get(r->w);
    if (!r->easy) {
        tg_err_set(err, TG_ENOMEM, 503, "could not start the upstream request");
        return TG_ENOMEM;
    }
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
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)r->route->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->route->timeout_ms);
    (void)o;
    r->xfer.done = on_up_done;
    if (dp_upstream_add(r->w->up, e) != 0) {
        tg_err_set(err, TG_EUPSTREAM, 503, "could not start the upstream request");
        return TG_EUPSTREAM;
    }
    atomic_fetch_add_explicit(&r->w->inflight, 1, memory_order_relaxed);
    return 0;
}

void dp_proxy_client_gone(dp_req_t *r)
{
    dp_worker_t *w = r->w;
    r->conn = NULL;
    if (r->easy && r->state != DP_REQ_DONE) {
        /* cancel at once: the provider stops generating (and billing) */
        dp_upstream_remove(w->up, r->easy);
        atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_relaxed);
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
        respond(r->conn, 200, "application/json", b.base, b.len, r->req_id, r->req_id_len, NULL);
    tg_buf_dispose(&b);
    dp_metrics_request(r->w->metrics, rc == 0 ? 200 : 500, "", "");
}

static void handle_metrics(dp_worker_t *w, dp_conn_t *c, dp_req_t *r)
{
    int n;
    dp_worker_t **ws = dp_server_workers(&n);
    tg_buf_t b = TG_BUF_INIT(64u << 20);
    if (dp_metrics_render(&b, ws, n, dp_server_snapshot_version()) == 0)
        respond(c, 200, "text/plain; version=0.0.4", b.base, b.len, r->req_id, r->req_id_len, NULL);
    tg_buf_dispose(&b);
    (void)w;
}

static bool path_is(const char *p, size_t n, const char *lit)
{
    return tg_mem_eq(p, n, lit, strlen(lit));
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

    if (path_is(path, plen, "/healthz") || path_is(path, plen, "/readyz") ||
        path_is(path, plen, "/metrics")) {
        if (method != HTTP_GET && method != HTTP_HEAD) {
            tg_err_set(&err, TG_EINVAL, 405, "use GET");
            respond_error(c, &err, r->req_id, r->req_id_len, "allow: GET\r\n");
        } else if (path_is(path, plen, "/metrics")) {
            handle_metrics(w, c, r);
        } else if (path_is(path, plen, "/healthz")) {
            static const char ok[] = "{\"status\":\"ok\"}";
            respond(c, 200, "application/json", ok, sizeof(ok) - 1, r->req_id, r->req_id_len, NULL);
        } else if (r->snap) {
            char body[96];
            int n = snprintf(body, sizeof(body), "{\"status\":\"ready\",\"snapshot_version\":%lld}",
                             (long long)r->snap->version);
            respond(c, 200, "application/json", body, (size_t)n, r->req_id, r->req_id_len, NULL);
        } else {
            static const char nr[] = "{\"status\":\"no configuration snapshot loaded\"}";
            respond(c, 503, "application/json", nr, sizeof(nr) - 1, r->req_id, r->req_id_len, NULL);
        }
        req_destroy(r);
        return NULL;
    }

    int ep = 0;
    if (path_is(path, plen, "/v1/chat/completions")) {
        ep = DP_EP_CHAT;
        r->endpoint_name = "chat.completions";
    } else if (path_is(path, plen, "/v1/completions")) {
        ep = DP_EP_COMPLETIONS;
        r->endpoint_name = "completions";
    } else if (path_is(path, plen, "/v1/embeddings")) {
        ep = DP_EP_EMBEDDINGS;
        r->endpoint_name = "embeddings";
    } else if (!path_is(path, plen, "/v1/models")) {
        tg_err_set(&err, TG_ENOTFOUND, 404, "unknown path \"%.*s\"", (int)(plen > 200 ? 200 : plen),
                   path);
        tg_err_code(&err, "unknown_url");
        fail_request(r, &err, false);
        return NULL;
    }
    r->endpoint = ep;
    bool is_models = ep == 0;
    if ((is_models && method != HTTP_GET) || (!is_models && method != HTTP_POST)) {
        tg_err_set(&err, TG_EINVAL, 405, "use %s for this path", is_models ? "GET" : "POST");
        respond_error(c, &err, r->req_id, r->req_id_len,
                      is_models ? "allow: GET\r\n" : "allow: POST\r\n");
        dp_metrics_request(w->metrics, 405, "", "");
        req_destroy(r);
        return NULL;
    }
    if (!r->snap) {
        tg_err_set(&err, TG_EUPSTREAM, 503, "the gateway has no configuration yet; retry shortly");
        fail_request(r, &err, false);
        return NULL;
    }
    if (authenticate(r, &err) != 0) {
        fail_request(r, &err, false);
        return NULL;
    }
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
    /* the body now lives in r->body.root; the raw bytes are no longer needed */
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
    r->target = pick_target(r);
    if (admit(r, &err) != 0)
        return NULL;
    r->ops = dp_provider_ops(r->target->provider->kind);
    if (!r->ops || start_upstream(r, &err) != 0) {
        if (err.status == 0)
            tg_err_set(&err, TG_EUPSTREAM, 502, "provider kind is not supported");
        fail_request(r, &err, true);
        return NULL;
    }
    return r;
}
