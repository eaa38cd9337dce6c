/* rstore_http.c: see rstore_http.h. The worker's cache answers for records its control plane does
 * not hold yet (spooled) and when the control plane cannot be asked; otherwise the control plane
 * does, so that a deletion made through any data plane is seen at once. A request waiting for the
 * control plane watches its connection: a client that leaves cancels nothing but its answer.
 * Loop thread only. */
#include "rstore_http.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "metrics.h"
#include "request.h"
#include "rrecord.h"
#include "rstore.h"

#include "tg_banned.h"

#define PREFIX "/v1/responses/"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define ITEMS_SUFFIX "/input_items"
#define ITEMS_SUFFIX_LEN (sizeof(ITEMS_SUFFIX) - 1)

enum { K_GET = 1, K_DELETE, K_ITEMS };

typedef struct rs_req {
    dp_conn_watch_t watch;
    dp_worker_t *w;
    dp_conn_t *conn; /* NULL once the client left */
    dp_http_msg_t msg;
    int kind;
    char tenant[37];
    char id[129];
    dp_rstore_op_t *op;
} rs_req_t;

/* The id segment of path and whether it ends in /input_items. */
static bool split(const char *path, size_t plen, const char **id, size_t *idlen, bool *items)
{
    if (plen <= PREFIX_LEN || memcmp(path, PREFIX, PREFIX_LEN) != 0)
        return false;
    const char *p = path + PREFIX_LEN;
    size_t n = plen - PREFIX_LEN;
    *items = n > ITEMS_SUFFIX_LEN &&
             memcmp(p + n - ITEMS_SUFFIX_LEN, ITEMS_SUFFIX, ITEMS_SUFFIX_LEN) == 0;
    if (*items)
        n -= ITEMS_SUFFIX_LEN;
    if (n == 0 || memchr(p, '/', n))
        return false;
    *id = p;
    *idlen = n;
    return true;
}

bool dp_rstore_http_match(const char *path, size_t plen)
{
    const char *id;
    size_t n;
    bool items;
    return split(path, plen, &id, &n, &items);
}

/* ---- answers ---- */

typedef struct lines {
    char b[256];
    size_t len;
} lines_t;

static void lines_init(lines_t *l, dp_worker_t *w, const dp_http_msg_t *m)
{
    char id[DP_REQ_ID_MAX];
    size_t n = dp_req_id(w, m, id);
    memcpy(l->b, "x-request-id: ", 14);
    memcpy(l->b + 14, id, n);
    memcpy(l->b + 14 + n, "\r\n", 2);
    l->len = 16 + n;
}

static void reply_error(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, const tg_err_t *err,
                        const char *allow)
{
    lines_t l;
    lines_init(&l, w, m);
    if (allow && strlen(allow) <= sizeof(l.b) - l.len) {
        memcpy(l.b + l.len, allow, strlen(allow));
        l.len += strlen(allow);
    }
    (void)dp_conn_respond_error(c, 0, err, l.b, l.len);
    dp_metrics_request(w->metrics, err->status, "", "");
}

static void reply_json(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    if (!s) {
        tg_err_t err;
        tg_err_set(&err, TG_ENOMEM, 500, "could not build the answer");
        reply_error(w, c, m, &err, NULL);
        return;
    }
    lines_t l;
    lines_init(&l, w, m);
    dp_head_t h = {200, "application/json", l.b, l.len};
    (void)dp_conn_respond(c, &h, s, strlen(s));
    dp_metrics_request(w->metrics, 200, "", "");
    free(s);
}

static void reply_not_found(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, const char *id,
                            size_t n)
{
    tg_err_t err;
    tg_err_set(&err, TG_ENOTFOUND, 404, "Response with id '%.*s' not found.",
               (int)(n > 128 ? 128 : n), id);
    err.type = "invalid_request_error";
    reply_error(w, c, m, &err, NULL);
}

/* GET /v1/responses/{id}/input_items: OpenAI's list shape over the record's input items. */
static void serve_items(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, json_t *rec)
{
    tg_err_t err;
    tg_err_clear(&err);
    json_t *out = dp_rrecord_items_page(rec, m->url.base, m->url.len, &err);
    if (!out && err.status == 400) {
        reply_error(w, c, m, &err, NULL);
        return;
    }
    reply_json(w, c, m, out);
    json_decref(out);
}

/* Answers a GET from a record (JSON text). */
static void serve_record(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, int kind,
                         const char *data, size_t len, const char *id)
{
    json_t *rec = json_loadb(data, len, 0, NULL);
    json_t *resp = json_object_get(rec, "response");
    if (!json_is_object(resp)) {
        reply_not_found(w, c, m, id, strlen(id)); /* unreadable is as good as gone */
    } else if (kind == K_ITEMS) {
        serve_items(w, c, m, rec);
    } else {
        reply_json(w, c, m, resp);
    }
    json_decref(rec);
}

static void reply_deleted(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m, const char *id)
{
    json_t *o = json_pack("{s:s,s:s,s:b}", "id", id, "object", "response.deleted", "deleted", 1);
    reply_json(w, c, m, o);
    json_decref(o);
}

static void reply_unavailable(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *m)
{
    tg_err_t err;
    tg_err_set(&err, TG_EUPSTREAM, 503, "stored responses cannot be reached now; retry shortly");
    reply_error(w, c, m, &err, NULL);
}

/* ---- waiting for the control plane ---- */

static void rq_free(rs_req_t *q)
{
    dp_http_msg_dispose(&q->msg);
    free(q);
}

static void on_conn_event(dp_conn_watch_t *watch, int ev)
{
    rs_req_t *q = (rs_req_t *)watch;
    if (ev != DP_CONN_EV_GONE)
        return;
    dp_rstore_cancel(q->op);
    rq_free(q);
}

static void on_done(void *ud, int result, const char *rec, size_t len)
{
    rs_req_t *q = ud;
    dp_worker_t *w = q->w;
    dp_conn_t *c = q->conn;
    if (q->kind == K_DELETE) {
        if (result == DP_RS_OK)
            reply_deleted(w, c, &q->msg, q->id);
        else if (result == DP_RS_NOT_FOUND)
            reply_not_found(w, c, &q->msg, q->id, strlen(q->id));
        else
            reply_unavailable(w, c, &q->msg);
    } else if (result == DP_RS_OK) {
        serve_record(w, c, &q->msg, q->kind, rec, len, q->id);
    } else {
        /* the control plane could not be asked: what this worker holds is the best answer */
        const dp_rentry_t *e =
            result == DP_RS_UNAVAILABLE ? dp_rstore_cached(w, q->tenant, q->id) : NULL;
        if (e)
            serve_record(w, c, &q->msg, q->kind, e->data, e->len, q->id);
        else if (result == DP_RS_NOT_FOUND)
            reply_not_found(w, c, &q->msg, q->id, strlen(q->id));
        else
            reply_unavailable(w, c, &q->msg);
    }
    rq_free(q);
    dp_conn_end(c);
}

/* ---- the door ---- */

bool dp_rstore_http_head(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *head)
{
    const char *path, *id = NULL;
    size_t plen, n = 0;
    bool items = false; /* split fills these on a path dp_rstore_http_match took */
    tg_err_t err;
    tg_err_clear(&err);
    dp_http_path(head, &path, &plen);
    (void)split(path, plen, &id, &n, &items);
    bool ok = head->method == HTTP_GET || (!items && head->method == HTTP_DELETE);
    if (!ok) {
        tg_err_set(&err, TG_EINVAL, 405, "use %s for this path", items ? "GET" : "GET or DELETE");
        reply_error(w, c, head, &err, items ? "allow: GET\r\n" : "allow: GET, DELETE\r\n");
        return true;
    }
    dp_gate_t g;
    dp_gate_init(&g, w, w->snap);
    if (dp_gate_key(&g, head, &err) != 0) {
        reply_error(w, c, head, &err, NULL);
        return true;
    }
    return false;
}

void dp_rstore_http_serve(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg)
{
    const char *path, *id = NULL;
    size_t plen, n = 0;
    bool items = false; /* split fills these on a path dp_rstore_http_match took */
    tg_err_t err;
    tg_err_clear(&err);
    dp_http_path(msg, &path, &plen);
    (void)split(path, plen, &id, &n, &items);
    dp_gate_t g;
    dp_gate_init(&g, w, w->snap);
    if (dp_rstore_http_head(w, c, msg)) {
        dp_conn_end(c);
        return;
    }
    if (dp_gate_key(&g, msg, &err) != 0 || !dp_rrecord_id_ok(id, n)) { /* the key passed above */
        reply_not_found(w, c, msg, id, n);
        dp_conn_end(c);
        return;
    }
    rs_req_t *q = calloc(1, sizeof(*q));
    if (!q) {
        tg_err_set(&err, TG_ENOMEM, 503, "out of memory");
        reply_error(w, c, msg, &err, NULL);
        dp_conn_end(c);
        return;
    }
    q->w = w;
    q->conn = c;
    dp_http_msg_move(&q->msg, msg); /* answered later, after the connection moved on */
    q->kind = q->msg.method == HTTP_DELETE ? K_DELETE : items ? K_ITEMS : K_GET;
    memcpy(q->tenant, g.key->tenant->id, strlen(g.key->tenant->id) + 1);
    memcpy(q->id, id, n);
    q->id[n] = '\0';
    q->watch.cb = on_conn_event;
    if (q->kind != K_DELETE) {
        const dp_rentry_t *e = dp_rstore_cached(w, q->tenant, q->id);
        /* not yet with the control plane (or there is none, and a deletion evicts it from every
         * worker): this worker's copy is the record */
        bool hit = e && (!e->acked || !dp_rstore_remote());
        dp_rstore_note_lookup(w, hit);
        if (hit) {
            serve_record(w, c, &q->msg, q->kind, e->data, e->len, q->id);
            rq_free(q);
            dp_conn_end(c);
            return;
        }
        /* another worker may have made it (the process's store), or the control plane has it */
        q->op = dp_rstore_fetch(w, q->tenant, q->id, false, on_done, q);
    } else {
        q->op = dp_rstore_delete(w, q->tenant, q->id, on_done, q);
    }
    if (!q->op) {
        reply_unavailable(w, c, &q->msg);
        rq_free(q);
        dp_conn_end(c);
        return;
    }
    dp_conn_watch(c, &q->watch);
}
