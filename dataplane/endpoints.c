/* endpoints.c: the paths the server answers without a provider (probes, metrics, the model list)
 * and the door to the request path: a request's head is checked by the gate before its body is
 * read, and a complete request either gets its answer here or starts in request.c. Loop thread
 * only. */
#include "endpoints.h"

#include <stdlib.h>
#include <string.h>

#include "fit.h"
#include "gate.h"
#include "metrics.h"
#include "request.h"
#include "rstore_http.h"
#include "tg_fmt.h"

#include "tg_banned.h"

static bool path_is(const char *p, size_t n, const char *lit)
{
    return tg_mem_eq(p, n, lit, strlen(lit));
}

static bool is_probe_path(const char *path, size_t plen)
{
    return path_is(path, plen, "/healthz") || path_is(path, plen, "/readyz") ||
           path_is(path, plen, "/metrics");
}

/* Header lines every answer here carries (its request id), then extra. */
typedef struct lines {
    char b[256];
    size_t len;
} lines_t;

static void lines_init(lines_t *l, dp_worker_t *w, const dp_http_msg_t *m, const char *extra)
{
    char id[DP_REQ_ID_MAX];
    size_t n = dp_req_id(w, m, id);
    l->len = 0;
    memcpy(l->b, "x-request-id: ", 14);
    l->len = 14;
    memcpy(l->b + l->len, id, n);
    l->len += n;
    memcpy(l->b + l->len, "\r\n", 2);
    l->len += 2;
    size_t el = extra ? strlen(extra) : 0;
    if (el > 0 && el <= sizeof(l->b) - l->len) {
        memcpy(l->b + l->len, extra, el);
        l->len += el;
    }
}

static void answer(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, int status,
                   const char *ctype, const char *body, size_t len)
{
    lines_t l;
    lines_init(&l, w, m, NULL);
    dp_head_t h = {status, ctype, l.b, l.len};
    (void)dp_conn_respond(c, &h, body, len);
}

static void answer_error(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, int endpoint,
                         const tg_err_t *err, const char *allow)
{
    lines_t l;
    lines_init(&l, w, m, allow);
    (void)dp_conn_respond_error(c, endpoint, err, l.b, l.len);
    dp_metrics_request(w->metrics, err->status, "", "");
}

static void serve_metrics(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m)
{
    tg_buf_t b = TG_BUF_INIT(64u << 20);
    if (w->render_metrics(&b) == 0)
        answer(w, c, m, 200, "text/plain; version=0.0.4", b.base, b.len);
    tg_buf_dispose(&b);
}

static void serve_readyz(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m)
{
    if (!w->snap) {
        static const char nr[] = "{\"status\":\"no configuration snapshot loaded\"}";
        answer(w, c, m, 503, "application/json", nr, sizeof(nr) - 1);
        return;
    }
    static const char pre[] = "{\"status\":\"ready\",\"snapshot_version\":";
    char body[sizeof(pre) + TG_FMT_U64_MAX + 4];
    size_t n = sizeof(pre) - 1;
    memcpy(body, pre, n);
    int64_t v = w->snap->version;
    if (v < 0) {
        body[n++] = '-';
        v = -v;
    }
    n += tg_fmt_u64(body + n, (uint64_t)v);
    body[n++] = '}';
    answer(w, c, m, 200, "application/json", body, n);
}

static void serve_probe(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, const char *path,
                        size_t plen)
{
    if (m->method != HTTP_GET && m->method != HTTP_HEAD) {
        tg_err_t err;
        tg_err_set(&err, TG_EINVAL, 405, "use GET");
        lines_t l;
        lines_init(&l, w, m, "allow: GET\r\n");
        (void)dp_conn_respond_error(c, 0, &err, l.b, l.len);
    } else if (path_is(path, plen, "/metrics")) {
        serve_metrics(w, c, m);
    } else if (path_is(path, plen, "/healthz")) {
        static const char ok[] = "{\"status\":\"ok\"}";
        answer(w, c, m, 200, "application/json", ok, sizeof(ok) - 1);
    } else {
        serve_readyz(w, c, m);
    }
}

/* GET /v1/models: the aliases the key may use, each with its targets' model info (fit.h). */
static void serve_models(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, const tg_key_t *k)
{
    tg_buf_t b = TG_BUF_INIT(64u << 20);
    static const char item_tail[] = ",\"object\":\"model\",\"created\":0,\"owned_by\":\"tollgate\"";
    static const char head[] = "{\"object\":\"list\",\"data\":[";
    int rc = tg_buf_append(&b, head, sizeof(head) - 1);
    for (size_t i = 0; rc == 0 && i < k->nroutes; i++) {
        const char *alias = k->routes[i]->alias;
        rc = i ? tg_buf_append(&b, ",{\"id\":", 7) : tg_buf_append(&b, "{\"id\":", 6);
        if (rc == 0)
            rc = tg_buf_append_json_str(&b, alias, strlen(alias));
        if (rc == 0)
            rc = tg_buf_append(&b, item_tail, sizeof(item_tail) - 1);
        if (rc == 0)
            rc = dp_fit_append_model_info(&b, k->routes[i]);
        if (rc == 0)
            rc = tg_buf_append(&b, "}", 1);
    }
    if (rc == 0)
        rc = tg_buf_append(&b, "]}", 2);
    if (rc == 0)
        answer(w, c, m, 200, "application/json", b.base, b.len);
    tg_buf_dispose(&b);
    dp_metrics_request(w->metrics, rc == 0 ? 200 : 500, "", "");
}

static bool on_head(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *head)
{
    tg_err_t err;
    const char *path;
    size_t plen;
    const char *allow = NULL;
    int rc;
    dp_gate_t g;
    tg_err_clear(&err);
    dp_gate_init(&g, w, w->snap);
    dp_http_path(head, &path, &plen);
    if (is_probe_path(path, plen)) {
        /* no key here, so no body either */
        bool get = head->method == HTTP_GET || head->method == HTTP_HEAD;
        tg_err_set(&err, TG_EINVAL, get ? 400 : 405,
                   get ? "this path takes no request body" : "use GET");
        allow = get ? NULL : "allow: GET\r\n";
        rc = TG_EINVAL;
    } else if (dp_rstore_http_match(path, plen)) {
        return dp_rstore_http_head(w, c, head);
    } else {
        rc = dp_gate_head(&g, head, &allow, &err);
    }
    if (rc == 0)
        return false;
    answer_error(w, c, head, g.endpoint, &err, allow);
    return true;
}

static void on_request(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg)
{
    tg_err_t err;
    const char *path;
    size_t plen;
    const char *allow = NULL;
    dp_gate_t g;
    tg_err_clear(&err);
    dp_http_path(msg, &path, &plen);
    if (is_probe_path(path, plen)) {
        serve_probe(w, c, msg, path, plen);
    } else if (dp_rstore_http_match(path, plen)) {
        dp_rstore_http_serve(w, c, msg); /* ends the connection's request itself */
        return;
    } else {
        dp_gate_init(&g, w, w->snap);
        if (dp_gate_head(&g, msg, &allow, &err) != 0) {
            answer_error(w, c, msg, g.endpoint, &err, allow);
        } else if (g.endpoint != 0) {
            dp_req_start(w, c, msg, &g); /* ends the connection's request itself */
            return;
        } else {
            serve_models(w, c, msg, g.key);
        }
    }
    dp_conn_end(c); /* the connection keeps msg's buffers for its next request */
}

const dp_conn_handler_t dp_endpoints_handler = {on_head, on_request};
