/* xresp.c: see xresp.h. Runs on the request's loop thread. */
#include "xresp.h"

#include <stdlib.h>
#include <string.h>

#include "responses_upstream.h"
#include "tg_errors.h"
#include "tg_fmt.h"
#include "tg_log.h"

#include "tg_banned.h"

#define NATIVE_EVENT_MAX (16u << 20) /* one relayed event (a lifecycle event carries it all) */
#define ID_MAX 48

struct dp_xresp {
    dp_worker_t *w;
    const char *tenant_id; /* borrowed from the request's snapshot */
    const char *key_id;    /* likewise */
    dp_rstore_op_t *put;   /* the final response's put, until the request takes it */
    const json_t *req;     /* borrowed: the client's body as a tree (the request's reqbody) */
    dp_resp_resolved_t res;
    char id[ID_MAX]; /* the response id translated answers carry */
    bool store;      /* the client's store (default true) */
    /* the current attempt */
    bool native;        /* relayed to the provider's own /responses */
    dp_reqbody_t pivot; /* the chat body a translated attempt sends */
    bool have_pivot;
    json_t *skel;         /* owned: the response object translated answers start from */
    dp_resp_stream_t *rs; /* owned: a translated stream */
    dp_sse_t sse;         /* a relayed stream's events */
    tg_buf_t data_scratch;
    tg_buf_t ev_scratch;
    int64_t next_seq; /* a relayed stream: the sequence_number after the last one seen */
    json_t *final;    /* owned: a relayed answer's final response */
    bool told;        /* dp_resp_state_final was called */
};

/* ---- the state seams ---- */

/* The final response and its input items, once per request, to the store when the client asked
 * for it (and there is a worker: the conformance suite and the fuzzer have none). */
static void tell_final(struct dp_xresp *r, const json_t *response)
{
    if (r->told || !r->store || !r->w || !json_is_object(response))
        return;
    r->told = true;
    const json_t *id = json_object_get(response, "id");
    json_t *items = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    if (!json_is_string(id) || dp_resp_input_items(r->req, json_string_value(id), r->res.lookup,
                                                   r->res.lookup_ud, &items, &err) != 0) {
        /* the request was translated or inlined from the same items: only memory fails here */
        tg_log(TG_LOG_WARN, "dp_resp", "not_stored", "reason=\"%s\"",
               json_is_string(id) ? err.msg : "the response has no id");
        return;
    }
    tg_log_debug("dp_resp", "final", "response_id=%.*s items=%zu",
                 (int)(json_string_length(id) > 200 ? 200 : json_string_length(id)),
                 json_string_value(id), json_array_size(items));
    r->put = dp_resp_state_final(r->w, r->tenant_id, r->key_id, response, r->res.prefix, items);
    json_decref(items);
}

/* ---- the request ---- */

dp_rstore_op_t *dp_xresp_take_put(dp_xlate_t *x)
{
    struct dp_xresp *r = x->resp;
    dp_rstore_op_t *op = r ? r->put : NULL;
    if (r)
        r->put = NULL;
    return op;
}

bool dp_xresp_put_pending(const dp_xlate_t *x)
{
    return x->resp && x->resp->put;
}

int dp_xresp_begin(dp_xlate_t *x, dp_worker_t *w, const char *tenant_id, const char *key_id,
                   const char *id, tg_err_t *err)
{
    const json_t *req = dp_reqbody_json(x->client_body);
    if (!req) {
        tg_err_set(err, TG_ENOMEM, 503, "could not read the request: out of memory");
        return TG_ENOMEM;
    }
    const json_t *store = json_object_get(req, "store");
    if (store && !json_is_null(store) && !json_is_boolean(store))
        return dp_build_invalid(err, "store", "store: must be a boolean");
    struct dp_xresp *r = calloc(1, sizeof(*r));
    if (!r) {
        tg_err_set(err, TG_ENOMEM, 503, "out of memory");
        return TG_ENOMEM;
    }
    r->w = w;
    r->tenant_id = tenant_id;
    r->key_id = key_id;
    r->req = req;
    r->store = !json_is_false(store);
    if (id) {
        size_t n = strlen(id);
        n = n < ID_MAX - 1 ? n : ID_MAX - 1;
        memcpy(r->id, id, n);
        r->id[n] = '\0';
    } else {
        char u[37];
        tg_uuid4(&w->rand, u);
        memcpy(r->id, "resp_", 5);
        size_t k = 5;
        for (size_t i = 0; i < 36; i++)
            if (u[i] != '-')
                r->id[k++] = u[i];
        r->id[k] = '\0';
    }
    dp_sse_init(&r->sse, NATIVE_EVENT_MAX);
    tg_buf_init(&r->data_scratch, NATIVE_EVENT_MAX);
    tg_buf_init(&r->ev_scratch, NATIVE_EVENT_MAX + 256);
    x->resp = r;
    return dp_resp_state_resolve(w, tenant_id, req, &r->res, err);
}

/* What one attempt leaves behind. */
static void attempt_clear(struct dp_xresp *r)
{
    if (r->have_pivot)
        dp_reqbody_dispose(&r->pivot);
    r->have_pivot = false;
    dp_resp_stream_destroy(r->rs);
    r->rs = NULL;
    json_decref(r->skel);
    r->skel = NULL;
    json_decref(r->final);
    r->final = NULL;
    tg_buf_reset(&r->sse.partial);
    r->sse.line_len = 0;
    r->sse.prev_cr = false;
    r->next_seq = 0;
}

void dp_xresp_destroy(struct dp_xresp *r)
{
    if (!r)
        return;
    attempt_clear(r);
    dp_resp_resolved_dispose(&r->res);
    dp_sse_dispose(&r->sse);
    tg_buf_dispose(&r->data_scratch);
    tg_buf_dispose(&r->ev_scratch);
    free(r);
}

/* The native request: {base}/responses for OpenAI, {resource}/openai/v1/responses for Azure
 * (whose base_url ends in /openai; the deployment goes in the body's model), the conversation
 * inlined and store false: the provider keeps nothing, Tollgate keeps the state. */
static int build_native(dp_xlate_t *x, const dp_call_t *c, dp_header_add_fn add, void *ud,
                        tg_buf_t *url, tg_buf_t *body, tg_err_t *err)
{
    struct dp_xresp *r = x->resp;
    const tg_provider_t *p = c->provider;
    /* the provider keeps nothing (store false): what needs its own state is refused here too */
    if (json_is_true(json_object_get(r->req, "background")))
        return dp_build_invalid(err, "background",
                                "background: true is not supported for %s (the gateway keeps "
                                "the state and sends store false)",
                                p->id);
    const json_t *conv = json_object_get(r->req, "conversation");
    if (conv && !json_is_null(conv))
        return dp_build_invalid(err, "conversation",
                                "conversation: conversation objects are not supported; use "
                                "previous_response_id");
    json_t *inl = NULL;
    int rc =
        dp_resp_request_inline(r->req, r->res.prefix, r->res.lookup, r->res.lookup_ud, &inl, err);
    if (rc != 0)
        return rc;
    rc = dp_openai_responses_request(p, inl, c->model, x->client_body->stream, add, ud, url, body);
    json_decref(inl);
    return rc == 0 ? 0 : dp_build_nomem(err, rc);
}

/* The translated request: the chat body every adapter speaks, as a tree-only reqbody. */
static int build_pivot(dp_xlate_t *x, dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                       tg_buf_t *body, tg_err_t *err)
{
    struct dp_xresp *r = x->resp;
    json_t *chat = NULL;
    int rc = dp_resp_request_to_chat(r->req, r->res.prefix, r->res.lookup, r->res.lookup_ud,
                                     c->provider->id, &chat, err);
    if (rc != 0)
        return rc;
    memset(&r->pivot, 0, sizeof(r->pivot));
    r->pivot.tree = chat;
    r->pivot.model = x->client_body->model;
    r->pivot.model_len = x->client_body->model_len;
    r->pivot.stream = x->client_body->stream;
    r->pivot.include_usage = true;
    r->pivot.max_tokens = x->client_body->max_tokens;
    r->have_pivot = true;
    r->skel = dp_resp_skeleton(r->req, r->id, c->model, c->now_s);
    if (r->skel && x->client_body->stream)
        r->rs = dp_resp_stream_create(r->skel);
    if (!r->skel || (x->client_body->stream && !r->rs))
        return dp_build_nomem(err, TG_ENOMEM);
    c->endpoint = DP_EP_CHAT;
    c->body = &r->pivot;
    x->st.endpoint = DP_EP_CHAT;
    x->st.body = &r->pivot;
    return x->ops->build(c, add, ud, url, body, err);
}

int dp_xresp_build(dp_xlate_t *x, dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                   tg_buf_t *body, tg_err_t *err)
{
    struct dp_xresp *r = x->resp;
    const tg_provider_t *p = c->provider;
    attempt_clear(r);
    r->native =
        (p->kind == TG_PROVIDER_OPENAI || p->kind == TG_PROVIDER_AZURE) && !p->responses_via_chat;
    x->st.endpoint = DP_EP_RESPONSES;
    x->st.body = x->client_body;
    if (r->native)
        return build_native(x, c, add, ud, url, body, err);
    return build_pivot(x, c, add, ud, url, body, err);
}

/* A relayed response object as the client's request made it: the provider was sent store false
 * and no previous_response_id, the client sees what it asked. */
static int patch_response(struct dp_xresp *r, json_t *resp)
{
    const json_t *prev = json_object_get(r->req, "previous_response_id");
    int rc = dp_json_set(resp, "store", json_boolean(r->store));
    if (rc == 0)
        rc = dp_json_set(resp, "previous_response_id",
                         json_is_string(prev) ? json_incref((json_t *)prev) : json_null());
    return rc;
}

int dp_xresp_response(dp_xlate_t *x, int status, const char *body, size_t n, tg_buf_t *out,
                      const char **client, size_t *client_len)
{
    struct dp_xresp *r = x->resp;
    json_t *final = NULL;
    int rc;
    tg_buf_reset(out);
    if (r->native) {
        *client = body;
        *client_len = n;
        if (status < 200 || status > 299)
            return 0; /* OpenAI's error shape already */
        json_t *root = json_loadb(body, n, 0, NULL);
        if (!json_is_object(root) || !json_is_string(json_object_get(root, "id"))) {
            json_decref(root);
            return TG_EUPSTREAM;
        }
        (void)dp_resp_usage_from_json(&x->st.usage, json_object_get(root, "usage"));
        rc = patch_response(r, root);
        if (rc == 0)
            rc = dp_json_append(out, root);
        final = root;
    } else {
        tg_buf_reset(&x->mid);
        rc = x->ops->response(&x->st, status, body, n, &x->mid);
        if (rc < 0)
            return rc;
        if (rc == DP_RESP_OUT) {
            body = x->mid.base ? x->mid.base : "";
            n = x->mid.len;
        }
        rc = dp_resp_response_from_chat(r->skel, status, body, n, out, &final);
    }
    if (rc == 0) {
        *client = out->base ? out->base : "";
        *client_len = out->len;
        tell_final(r, final);
    }
    json_decref(final);
    return rc;
}

/* ---- a relayed stream ---- */

/* The name on an event's `event:` line; false without one (OpenAI and Azure always name their
 * events; an unnamed event is relayed as it came). */
static bool event_name(const char *ev, size_t n, const char **name, size_t *len)
{
    if (!dp_has_prefix(ev, n, "event:"))
        return false;
    size_t i = 6;
    while (i < n && ev[i] == ' ')
        i++;
    size_t j = i;
    while (j < n && ev[j] != '\n' && ev[j] != '\r')
        j++;
    *name = ev + i;
    *len = j - i;
    return true;
}

static bool name_is(const char *s, size_t n, const char *lit)
{
    return tg_mem_eq(s, n, lit, strlen(lit));
}

/* The sequence_number an event carries (the last one, were there two), or -1. */
static int64_t event_seq(const char *ev, size_t n)
{
    static const char key[] = "\"sequence_number\":";
    const char *p = tg_memmem(ev, n, key, sizeof(key) - 1);
    if (!p)
        return -1;
    p += sizeof(key) - 1;
    const char *end = ev + n;
    while (p < end && *p == ' ')
        p++;
    int64_t v = 0;
    bool any = false;
    for (; p < end && *p >= '0' && *p <= '9' && v < ((int64_t)1 << 50); p++) {
        v = v * 10 + (*p - '0');
        any = true;
    }
    return any ? v : -1;
}

typedef struct relay_ctx {
    dp_xlate_t *x;
    tg_buf_t *out;
} relay_ctx_t;

/* A lifecycle event (response.created ... response.completed): its response as the client asked
 * it; a terminal one gives the usage and the final response. */
static int relay_lifecycle(relay_ctx_t *f, const char *ev, size_t n, const char *name, size_t nlen,
                           bool terminal)
{
    struct dp_xresp *r = f->x->resp;
    const char *data;
    size_t len;
    if (!dp_sse_data(ev, n, &r->data_scratch, &data, &len))
        return tg_buf_append(f->out, ev, n);
    json_t *root = json_loadb(data, len, 0, NULL);
    json_t *resp = json_object_get(root, "response");
    if (!json_is_object(resp)) {
        json_decref(root);
        return tg_buf_append(f->out, ev, n); /* not ours to judge: as the provider sent it */
    }
    int rc = patch_response(r, resp);
    if (rc == 0 && terminal) {
        (void)dp_resp_usage_from_json(&f->x->st.usage, json_object_get(resp, "usage"));
        json_decref(r->final);
        r->final = json_incref(resp);
        f->x->st.done = true;
        /* stored now, so that the request holds this event until the store has it */
        tell_final(r, r->final);
    }
    tg_buf_t *b = &r->ev_scratch;
    tg_buf_reset(b);
    if (rc == 0)
        rc = tg_buf_append(b, "event: ", 7);
    if (rc == 0)
        rc = tg_buf_append(b, name, nlen);
    if (rc == 0)
        rc = tg_buf_append(b, "\ndata: ", 7);
    if (rc == 0)
        rc = dp_json_append(b, root);
    if (rc == 0)
        rc = tg_buf_append(b, "\n\n", 2);
    if (rc == 0)
        rc = tg_buf_append(f->out, b->base, b->len);
    json_decref(root);
    return rc;
}

static int on_native_event(void *ud, const char *ev, size_t n)
{
    relay_ctx_t *f = ud;
    struct dp_xresp *r = f->x->resp;
    int64_t seq = event_seq(ev, n);
    if (seq >= 0)
        r->next_seq = seq + 1;
    const char *name;
    size_t nlen;
    if (!event_name(ev, n, &name, &nlen))
        return tg_buf_append(f->out, ev, n);
    static const char *const open_names[] = {"response.created", "response.in_progress",
                                             "response.queued"};
    static const char *const end_names[] = {"response.completed", "response.incomplete",
                                            "response.failed"};
    for (size_t i = 0; i < 3; i++) {
        if (name_is(name, nlen, open_names[i]))
            return relay_lifecycle(f, ev, n, name, nlen, false);
        if (name_is(name, nlen, end_names[i]))
            return relay_lifecycle(f, ev, n, name, nlen, true);
    }
    if (nlen > 6 && memcmp(name + nlen - 6, ".delta", 6) == 0)
        f->x->st.content_events++;
    return tg_buf_append(f->out, ev, n);
}

int dp_xresp_feed(dp_xlate_t *x, const char *p, size_t n, tg_buf_t *out)
{
    struct dp_xresp *r = x->resp;
    if (r->native) {
        relay_ctx_t f = {x, out};
        return dp_sse_feed(&r->sse, p, n, on_native_event, &f);
    }
    tg_buf_reset(&x->mid);
    int rc = x->ops->stream_feed(&x->st, p, n, &x->mid);
    if (rc == 0 && x->mid.len > 0)
        rc = dp_resp_stream_feed(r->rs, x->mid.base, x->mid.len, out);
    return rc;
}

int dp_xresp_end(dp_xlate_t *x, bool complete, tg_buf_t *out)
{
    struct dp_xresp *r = x->resp;
    int rc = 0;
    if (r->native) {
        if (dp_sse_pending(&r->sse) > 0) { /* an unterminated last event, as it came */
            relay_ctx_t f = {x, out};
            rc = on_native_event(&f, r->sse.partial.base, r->sse.partial.len);
            tg_buf_reset(&r->sse.partial);
        }
        if (rc == 0 && complete && !r->final) {
            /* the provider ended cleanly before its terminal event: the client's SDK would wait
             * for a response that never comes */
            tg_err_t err;
            tg_err_set(&err, TG_EUPSTREAM, 502,
                       "the stream of the provider ended before its response was complete");
            tg_err_code(&err, "upstream_bad_response");
            rc = dp_xresp_fail_event(x, &err, out);
        }
        if (rc == 0 && complete)
            tell_final(r, r->final);
        return rc;
    }
    tg_buf_reset(&x->mid);
    rc = x->ops->stream_end(&x->st, complete, &x->mid);
    if (rc == 0 && x->mid.len > 0)
        rc = dp_resp_stream_feed(r->rs, x->mid.base, x->mid.len, out);
    if (rc == 0)
        rc = dp_resp_stream_end(r->rs, complete, out);
    if (rc == 0 && complete)
        tell_final(r, dp_resp_stream_response(r->rs));
    return rc;
}

int dp_xresp_fail_event(dp_xlate_t *x, const tg_err_t *err, tg_buf_t *out)
{
    struct dp_xresp *r = x->resp;
    if (!r->native && r->rs)
        return dp_resp_stream_fail(r->rs, err->status, err->msg, strlen(err->msg), out);
    /* a relayed stream: OpenAI's own `error` event, numbered after the last event */
    char num[TG_FMT_U64_MAX];
    const char *code = err->ecode ? err->ecode : err->type ? err->type : "server_error";
    size_t mark = out->len;
    int rc = dp_str_append(out, "event: error\ndata: {\"type\":\"error\",\"code\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, code, strlen(code));
    if (rc == 0)
        rc = dp_str_append(out, ",\"message\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, err->msg, strlen(err->msg));
    if (rc == 0)
        rc = dp_str_append(out, ",\"param\":null,\"sequence_number\":");
    if (rc == 0)
        rc = tg_buf_append(out, num, tg_fmt_u64(num, (uint64_t)r->next_seq));
    if (rc == 0)
        rc = dp_str_append(out, "}\n\n");
    if (rc != 0)
        out->len = mark;
    return rc;
}
