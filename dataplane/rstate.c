/* rstate.c: see rstate.h, whose two state seams are here too. A stored record gives
 * the conversation so far as its input items (earlier turns included) followed by its response's
 * output items: that is the prefix of a request naming it as previous_response_id. Loop thread
 * only. */
#include "rstate.h"

#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "rrecord.h"
#include "tg_log.h"

#include "tg_banned.h"

#define WAIT_MAX_FETCHES 64 /* item_references fetched for one request; more are 400s */
#define WORKERS_MAX 256

typedef struct slot {
    struct dp_rstate_wait *wt;
    dp_rstore_op_t *op; /* NULL once it ended */
} slot_t;

struct dp_rstate_wait {
    dp_worker_t *w;
    size_t pending;
    bool unavailable;
    void (*cb)(void *ud, bool unavailable);
    void *ud;
    slot_t slots[WAIT_MAX_FETCHES];
    size_t nops;
    json_t *records; /* what came back, parsed: found by resolve even if the cache is too small */
};

/* The wait whose records resolve may read: set while its callback runs. */
static dp_rstate_wait_t *current[WORKERS_MAX];

static bool id_of(const json_t *v, const char **s)
{
    *s = json_string_value(v);
    return *s && dp_rrecord_id_ok(*s, strlen(*s));
}

static void on_fetched(void *ud, int result, const char *rec, size_t len)
{
    slot_t *sl = ud;
    dp_rstate_wait_t *wt = sl->wt;
    sl->op = NULL;
    if (result == DP_RS_OK) {
        json_t *o = json_loadb(rec, len, 0, NULL);
        if (json_is_object(o))
            json_array_append(wt->records, o);
        json_decref(o);
    } else if (result == DP_RS_UNAVAILABLE) {
        wt->unavailable = true;
    }
    if (--wt->pending > 0)
        return;
    int wid = wt->w->id;
    if (wid < WORKERS_MAX)
        current[wid] = wt;
    wt->cb(wt->ud, wt->unavailable); /* may free wt */
    if (wid < WORKERS_MAX)
        current[wid] = NULL;
}

static int fetch(dp_rstate_wait_t *wt, const char *tenant, const char *id, bool by_item)
{
    if (wt->nops >= WAIT_MAX_FETCHES)
        return 0; /* the rest resolve from the cache or are 400s */
    slot_t *sl = &wt->slots[wt->nops];
    sl->wt = wt;
    sl->op = dp_rstore_fetch(wt->w, tenant, id, by_item, on_fetched, sl);
    if (!sl->op)
        return TG_ENOMEM;
    wt->nops++;
    wt->pending++;
    return 0;
}

int dp_rstate_prepare(dp_worker_t *w, const char *tenant, const json_t *req,
                      void (*cb)(void *ud, bool unavailable), void *ud, dp_rstate_wait_t **out)
{
    *out = NULL;
    /* what this worker's cache does not hold is asked of the store thread: the control plane,
     * or without one the process's store (another worker may have made it) */
    const char *prev = NULL;
    bool want_prev = false;
    if (id_of(json_object_get(req, "previous_response_id"), &prev)) {
        want_prev = !dp_rstore_cached(w, tenant, prev);
        dp_rstore_note_lookup(w, !want_prev);
    }
    const json_t *input = json_object_get(req, "input");
    size_t i;
    const json_t *it;
    bool any = want_prev;
    json_array_foreach(input, i, it)
    {
        const char *id;
        if (json_is_string(json_object_get(it, "type")) &&
            strcmp(json_string_value(json_object_get(it, "type")), "item_reference") == 0 &&
            id_of(json_object_get(it, "id"), &id)) {
            bool hit = dp_rstore_cached_item(w, tenant, id) != NULL;
            dp_rstore_note_lookup(w, hit);
            any = any || !hit;
        }
    }
    if (!any)
        return 0;
    dp_rstate_wait_t *wt = calloc(1, sizeof(*wt));
    if (!wt)
        return TG_ENOMEM;
    wt->w = w;
    wt->cb = cb;
    wt->ud = ud;
    wt->records = json_array();
    wt->pending = 1; /* held while fetches start, so that none ends it early */
    int rc = 0;
    if (want_prev)
        rc = fetch(wt, tenant, prev, false);
    json_array_foreach(input, i, it)
    {
        const char *id;
        if (rc == 0 && json_is_string(json_object_get(it, "type")) &&
            strcmp(json_string_value(json_object_get(it, "type")), "item_reference") == 0 &&
            id_of(json_object_get(it, "id"), &id) && !dp_rstore_cached_item(w, tenant, id))
            rc = fetch(wt, tenant, id, true);
    }
    wt->pending--; /* fetches end on a later loop turn, never inside dp_rstore_fetch */
    if (rc != 0 || wt->pending == 0) {
        dp_rstate_wait_free(wt);
        return rc;
    }
    *out = wt;
    return 1;
}

void dp_rstate_wait_free(dp_rstate_wait_t *wt)
{
    if (!wt)
        return;
    for (size_t i = 0; i < wt->nops; i++)
        dp_rstore_cancel(wt->slots[i].op);
    int wid = wt->w->id;
    if (wid < WORKERS_MAX && current[wid] == wt)
        current[wid] = NULL;
    json_decref(wt->records);
    free(wt);
}

/* ---- reading records ---- */

/* The record (tenant, id) as JSON (a new reference), from the wait that just ended or the cache. */
static json_t *record_get(dp_worker_t *w, const char *tenant, const char *id)
{
    if (!w)
        return NULL; /* no worker, no store (the conformance suite) */
    dp_rstate_wait_t *wt = w->id < WORKERS_MAX ? current[w->id] : NULL;
    size_t i;
    json_t *r;
    if (wt) {
        json_array_foreach(wt->records, i, r)
        {
            if (json_is_string(json_object_get(r, "tenant")) &&
                strcmp(json_string_value(json_object_get(r, "tenant")), tenant) == 0 &&
                json_is_string(json_object_get(r, "id")) &&
                strcmp(json_string_value(json_object_get(r, "id")), id) == 0)
                return json_incref(r);
        }
    }
    const dp_rentry_t *e = dp_rstore_cached(w, tenant, id);
    return e ? json_loadb(e->data, e->len, 0, NULL) : NULL;
}

/* A copy of the item of this id the tenant has stored, or NULL. */
static json_t *item_get(dp_worker_t *w, const char *tenant, const char *id, json_t *prev)
{
    json_t *it = prev ? dp_rrecord_item(prev, id) : NULL;
    if (it)
        return json_deep_copy(it);
    if (!w)
        return NULL;
    dp_rstate_wait_t *wt = w->id < WORKERS_MAX ? current[w->id] : NULL;
    size_t i;
    json_t *r;
    if (wt) {
        json_array_foreach(wt->records, i, r)
        {
            const char *t = json_string_value(json_object_get(r, "tenant"));
            if (t && strcmp(t, tenant) == 0 && (it = dp_rrecord_item(r, id)) != NULL)
                return json_deep_copy(it);
        }
    }
    const dp_rentry_t *e = dp_rstore_cached_item(w, tenant, id);
    json_t *rec = e ? json_loadb(e->data, e->len, 0, NULL) : NULL;
    it = rec ? dp_rrecord_item(rec, id) : NULL;
    json_t *copy = it ? json_deep_copy(it) : NULL;
    json_decref(rec);
    return copy;
}

static const json_t *lookup(void *ud, const char *id, size_t n)
{
    return json_object_getn(ud, id, n);
}

/* ---- the seams ---- */

void dp_resp_resolved_dispose(dp_resp_resolved_t *r)
{
    json_decref(r->prefix);
    json_decref(r->refs);
    memset(r, 0, sizeof(*r));
}

int dp_resp_state_resolve(dp_worker_t *w, const char *tenant_id, const json_t *req,
                          dp_resp_resolved_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    const json_t *prev = json_object_get(req, "previous_response_id");
    json_t *rec = NULL;
    if (prev && !json_is_null(prev)) {
        if (!json_is_string(prev))
            return dp_build_invalid(err, "previous_response_id",
                                    "previous_response_id: must be a string (a response id)");
        const char *id = json_string_value(prev);
        rec = dp_rrecord_id_ok(id, strlen(id)) ? record_get(w, tenant_id, id) : NULL;
        json_t *resp = json_object_get(rec, "response");
        if (!json_is_object(resp)) {
            json_decref(rec);
            size_t n = json_string_length(prev);
            tg_err_set(err, TG_EINVAL, 400, "Previous response with id '%.*s' not found.",
                       (int)(n > 200 ? 200 : n), id);
            err->param = "previous_response_id";
            tg_err_code(err, "previous_response_not_found");
            return TG_EINVAL;
        }
        out->prefix = json_array();
        json_t *items = json_object_get(rec, "input_items");
        json_t *output = json_object_get(resp, "output");
        if (!out->prefix || (json_is_array(items) && json_array_extend(out->prefix, items) != 0) ||
            (json_is_array(output) && json_array_extend(out->prefix, output) != 0)) {
            json_decref(rec);
            dp_resp_resolved_dispose(out);
            tg_err_set(err, TG_ENOMEM, 503, "out of memory");
            return TG_ENOMEM;
        }
    }
    out->refs = json_object();
    const json_t *input = json_object_get(req, "input");
    size_t i;
    const json_t *it;
    json_array_foreach(input, i, it)
    {
        const char *id;
        const char *type = json_string_value(json_object_get(it, "type"));
        if (!type || strcmp(type, "item_reference") != 0 ||
            !id_of(json_object_get(it, "id"), &id) || json_object_get(out->refs, id))
            continue;
        json_t *item = item_get(w, tenant_id, id, rec);
        if (item)
            json_object_set_new(out->refs, id, item); /* an unknown id stays a 400 of its own */
    }
    json_decref(rec);
    out->lookup = lookup;
    out->lookup_ud = out->refs;
    return 0;
}

dp_rstore_op_t *dp_resp_state_final(dp_worker_t *w, const char *tenant_id, const char *key_id,
                                    const json_t *response, const json_t *prefix,
                                    const json_t *input_items)
{
    const char *id;
    if (!id_of(json_object_get(response, "id"), &id))
        return NULL;
    json_t *all = json_array();
    char *rtext = NULL, *itext = NULL;
    dp_rstore_op_t *op = NULL;
    tg_buf_t rec = TG_BUF_INIT(128u << 20);
    /* the record's input items: the conversation before this turn, then this turn's */
    if (!all || (json_is_array(prefix) && json_array_extend(all, (json_t *)prefix) != 0) ||
        (json_is_array(input_items) && json_array_extend(all, (json_t *)input_items) != 0))
        goto out;
    rtext = json_dumps(response, JSON_COMPACT);
    itext = json_dumps(all, JSON_COMPACT);
    if (!rtext || !itext ||
        dp_rstore_record(&rec, id, tenant_id, key_id,
                         json_integer_value(json_object_get(response, "created_at")), rtext,
                         strlen(rtext), itext, strlen(itext)) != 0)
        goto out;
    op = dp_rstore_put(w, tenant_id, id, rec.base, rec.len, NULL, NULL);
out:
    if (!op)
        tg_log(TG_LOG_WARN, "dp_rstore", "response_not_stored", "id=%s reason=\"out of memory\"",
               id);
    json_decref(all);
    free(rtext);
    free(itext);
    tg_buf_dispose(&rec);
    return op;
}
