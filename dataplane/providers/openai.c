/* openai.c: the OpenAI wire format, spoken by OpenAI and every OpenAI-compatible server (vLLM,
 * Ollama, Mistral, Groq, DeepSeek, Together, OpenRouter). The body passes through with the model
 * renamed; usage is forced on for streams and hidden again unless the client asked for it. */
#include "provider.h"

#include <string.h>

#include "responses_upstream.h"
#include "tg_jscan.h"

#include "tg_banned.h"

/* What to do with an upstream event; REPLACE bytes are in *out. */
enum { DP_EV_FORWARD = 0, DP_EV_DROP = 1, DP_EV_REPLACE = 2 };

/* The path of the call's endpoint; NULL (a 400 in err) for one OpenAI does not have. */
static const char *endpoint_path(const dp_call_t *c, tg_err_t *err)
{
    switch (c->endpoint) {
    case DP_EP_CHAT:
        return "/chat/completions";
    case DP_EP_COMPLETIONS:
        return "/completions";
    case DP_EP_EMBEDDINGS:
        return "/embeddings";
    default:
        tg_err_set(err, TG_EINVAL, 400, "this endpoint is not available on provider \"%s\"",
                   c->provider->id);
        return NULL;
    }
}

/* OpenAI-compatible: {base}/chat/completions, Authorization: Bearer. */
static int openai_build(const dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                        tg_buf_t *body, tg_err_t *err)
{
    const tg_provider_t *p = c->provider;
    const char *path = endpoint_path(c, err);
    if (!path)
        return TG_EINVAL;
    int rc = dp_buf_append_strs(url, p->base_url, path, NULL);
    if (rc == 0)
        rc = tg_buf_append(url, "", 1);
    if (rc == 0)
        rc = dp_openai_headers(p, c->body->stream, add, ud);
    if (rc == 0)
        rc = dp_reqbody_build_upstream(c->body, c->model, body, err);
    return rc;
}

/* Azure OpenAI: {base}/deployments/{deployment}/chat/completions?api-version=..., api-key. The
 * target's model is the deployment name; base_url is https://{resource}.openai.azure.com/openai. */
#define AZURE_API_VERSION "2024-10-21"

static int azure_build(const dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                       tg_buf_t *body, tg_err_t *err)
{
    const tg_provider_t *p = c->provider;
    const char *path = endpoint_path(c, err);
    if (!path)
        return TG_EINVAL;
    int rc = dp_buf_append_strs(url, p->base_url, "/deployments/", NULL);
    if (rc == 0)
        rc = dp_url_append_segment(url, c->model, strlen(c->model));
    if (rc == 0)
        rc = dp_buf_append_strs(url, path, "?api-version=", NULL);
    if (rc == 0) {
        const char *v = p->api_version ? p->api_version : AZURE_API_VERSION;
        rc = dp_url_append_segment(url, v, strlen(v));
    }
    if (rc == 0)
        rc = tg_buf_append(url, "", 1);
    if (rc == 0)
        rc = dp_openai_headers(p, c->body->stream, add, ud);
    if (rc == 0)
        rc = dp_reqbody_build_upstream(c->body, c->model, body, err);
    return rc;
}

int dp_openai_headers(const tg_provider_t *p, bool stream, dp_header_add_fn add, void *ud)
{
    int rc = dp_header_add_json(add, ud, stream ? "text/event-stream" : "application/json");
    if (rc == 0)
        rc = dp_header_add_extra(p, add, ud);
    if (rc != 0 || !p->api_key)
        return rc;
    if (p->kind == TG_PROVIDER_AZURE)
        return dp_header_add_secret(add, ud, "api-key", p->api_key);
    return dp_header_add_secret_pre(add, ud, "Authorization", "Bearer ", p->api_key);
}

static int replace_data(dp_stream_state_t *st, const char *data, size_t n, const char **out,
                        size_t *outn)
{
    tg_buf_reset(&st->scratch);
    if (tg_buf_append(&st->scratch, "data: ", 6) != 0 ||
        tg_buf_append(&st->scratch, data, n) != 0 || tg_buf_append(&st->scratch, "\n\n", 2) != 0)
        return TG_ENOMEM;
    *out = st->scratch.base;
    *outn = st->scratch.len;
    return DP_EV_REPLACE;
}

/* The chunk as a tree: the path for a chunk that names "usage" twice (the last one counts, and
 * every one must go when the client did not ask). */
static int on_usage_chunk_tree(dp_stream_state_t *st, const char *data, size_t n, const char **out,
                               size_t *outn)
{
    json_t *root = json_loadb(data, n, 0, NULL);
    if (!root)
        return DP_EV_FORWARD; /* not ours to judge; the client sees what the provider sent */
    json_t *u = json_object_get(root, "usage");
    if (json_is_object(u))
        dp_usage_from_json(&st->usage, u);
    json_t *choices = json_object_get(root, "choices");
    bool has_choices = json_is_array(choices) && json_array_size(choices) > 0;
    if (has_choices)
        st->content_events++;
    int rc = DP_EV_FORWARD;
    if (!st->client_wants_usage) {
        if (!has_choices) {
            rc = DP_EV_DROP;
        } else {
            json_object_del(root, "usage");
            tg_buf_reset(&st->data_scratch);
            if (dp_json_append(&st->data_scratch, root) != 0)
                rc = TG_ENOMEM;
            else
                rc = replace_data(st, st->data_scratch.base, st->data_scratch.len, out, outn);
        }
    }
    json_decref(root);
    return rc;
}

/* What the scanner found in a chunk's top-level object. */
typedef struct chunk_scan {
    const char *base;
    const char *usage; /* the usage member's value */
    size_t usage_len;
    int usage_type;
    int nusage;
    size_t cut_off, cut_len; /* the usage member with one comma */
    bool usage_pending;      /* usage was the last member seen */
    size_t usage_before;     /* the end of the member before it */
    size_t prev_end;
    bool has_choices;
} chunk_scan_t;

static int on_chunk_member(void *ud, const tg_jmember_t *m)
{
    chunk_scan_t *c = ud;
    size_t val_off = (size_t)(m->val - c->base);
    if (c->usage_pending) {
        c->cut_len = m->start - c->cut_off;
        c->usage_pending = false;
    }
    if (tg_jstr_eq(m->key, m->key_len, m->key_escaped, "usage", 5)) {
        c->nusage++;
        c->usage = m->val;
        c->usage_len = m->val_len;
        c->usage_type = m->type;
        c->cut_off = m->start;
        c->usage_before = c->prev_end;
        c->usage_pending = true;
    } else if (tg_jstr_eq(m->key, m->key_len, m->key_escaped, "choices", 7)) {
        c->has_choices = m->type == TG_JARRAY && !tg_jempty(m->val, m->val_len);
    }
    c->prev_end = val_off + m->val_len;
    return 0;
}

/* The chunk carries a usage object: record it and, if the client did not ask for usage, take it
 * out again (dropping the chunk when usage is all it carries). The scanner finds the members and
 * the chunk is spliced, not parsed and dumped. */
static int on_usage_chunk(dp_stream_state_t *st, const char *data, size_t n, const char **out,
                          size_t *outn)
{
    chunk_scan_t c;
    memset(&c, 0, sizeof(c));
    c.base = data;
    int top;
    if (tg_jscan_ex(data, n, TG_JSCAN_ANY_DUPLICATES, &top, on_chunk_member, &c) != 0 || top != '{')
        return DP_EV_FORWARD; /* not ours to judge; the client sees what the provider sent */
    if (c.nusage > 1)
        return on_usage_chunk_tree(st, data, n, out, outn);
    if (c.usage_type == TG_JOBJECT)
        dp_usage_from_span(&st->usage, c.usage, c.usage_len);
    if (c.has_choices)
        st->content_events++;
    if (st->client_wants_usage || c.nusage == 0)
        return DP_EV_FORWARD;
    if (!c.has_choices)
        return DP_EV_DROP;
    if (c.usage_pending) { /* usage came last: cut from the end of the member before it */
        c.cut_off = c.usage_before;
        c.cut_len = (size_t)(c.usage - data) + c.usage_len - c.usage_before;
    }
    tg_buf_reset(&st->scratch);
    if (tg_buf_append(&st->scratch, "data: ", 6) != 0 ||
        tg_buf_append(&st->scratch, data, c.cut_off) != 0 ||
        tg_buf_append(&st->scratch, data + c.cut_off + c.cut_len, n - c.cut_off - c.cut_len) != 0 ||
        tg_buf_append(&st->scratch, "\n\n", 2) != 0)
        return TG_ENOMEM;
    *out = st->scratch.base;
    *outn = st->scratch.len;
    return DP_EV_REPLACE;
}

static int openai_on_event(dp_stream_state_t *st, const char *ev, size_t n, const char **out,
                           size_t *outn)
{
    const char *data;
    size_t len;
    if (!dp_sse_data(ev, n, &st->data_scratch, &data, &len))
        return DP_EV_FORWARD; /* comments and keep-alives pass through */
    if (tg_mem_eq(data, len, "[DONE]", 6)) {
        st->done = true;
        return DP_EV_FORWARD;
    }
    const char *u = tg_memmem(data, len, "\"usage\":", 8);
    if (!u) {
        /* `"usage" :` (a server that pretty-prints) is still usage: parse rather than miss it */
        if (tg_memmem(data, len, "\"usage\"", 7))
            return on_usage_chunk(st, data, len, out, outn);
        st->content_events++;
        return DP_EV_FORWARD;
    }
    /* The common case with include_usage forced on: every chunk but the last says
     * "usage":null. Strip it textually when the client did not ask, instead of a parse. */
    const char *rest = u + 8;
    size_t restn = len - (size_t)(rest - data);
    if (restn >= 4 && memcmp(rest, "null", 4) == 0 && !tg_memmem(rest, restn, "\"usage\"", 7)) {
        st->content_events++;
        if (st->client_wants_usage)
            return DP_EV_FORWARD;
        /* remove `,"usage":null` (or `"usage":null,`) and keep the rest of the chunk */
        const char *cut = u;
        const char *cut_end = rest + 4;
        if (cut > data && cut[-1] == ',')
            cut--;
        else if (cut_end < data + len && *cut_end == ',')
            cut_end++;
        tg_buf_reset(&st->scratch);
        if (tg_buf_append(&st->scratch, "data: ", 6) != 0 ||
            tg_buf_append(&st->scratch, data, (size_t)(cut - data)) != 0 ||
            tg_buf_append(&st->scratch, cut_end, (size_t)(data + len - cut_end)) != 0 ||
            tg_buf_append(&st->scratch, "\n\n", 2) != 0)
            return TG_ENOMEM;
        *out = st->scratch.base;
        *outn = st->scratch.len;
        return DP_EV_REPLACE;
    }
    return on_usage_chunk(st, data, len, out, outn);
}

/* The stream's events, one at a time, as the SSE reader completes them. */
typedef struct feed_ctx {
    dp_stream_state_t *st;
    tg_buf_t *out;
} feed_ctx_t;

static int on_sse_event(void *ud, const char *ev, size_t n)
{
    feed_ctx_t *f = ud;
    const char *o = ev;
    size_t on = n;
    int act = openai_on_event(f->st, ev, n, &o, &on);
    if (act < 0)
        return act;
    if (act == DP_EV_DROP)
        return 0;
    return tg_buf_append(f->out, o, on);
}

static int openai_stream_feed(dp_stream_state_t *st, const char *p, size_t n, tg_buf_t *out)
{
    feed_ctx_t f = {st, out};
    return dp_sse_feed(&st->sse, p, n, on_sse_event, &f);
}

static int openai_stream_end(dp_stream_state_t *st, bool complete, tg_buf_t *out)
{
    (void)complete;
    /* an unterminated last event: forward it as it came */
    if (dp_sse_pending(&st->sse) > 0)
        return tg_buf_append(out, st->sse.partial.base, st->sse.partial.len);
    return 0;
}

static int openai_response(dp_stream_state_t *st, int status, const char *body, size_t n,
                           tg_buf_t *out)
{
    (void)out;
    if (status >= 200 && status < 300 && n > 0)
        dp_usage_scan(&st->usage, body, n);
    return DP_RESP_PASS; /* errors are in OpenAI's shape already */
}

const dp_provider_ops_t dp_provider_openai = {
    .kind = "openai",
    .stream_content_type = "text/event-stream",
    .build = openai_build,
    .response = openai_response,
    .stream_feed = openai_stream_feed,
    .stream_end = openai_stream_end,
};

const dp_provider_ops_t dp_provider_azure = {
    .kind = "azure",
    .stream_content_type = "text/event-stream",
    .build = azure_build,
    .response = openai_response,
    .stream_feed = openai_stream_feed,
    .stream_end = openai_stream_end,
};

int dp_openai_responses_request(const tg_provider_t *p, json_t *req, const char *model, bool stream,
                                dp_header_add_fn add, void *ud, tg_buf_t *url, tg_buf_t *body)
{
    int rc = dp_json_set(req, "model", json_string(model));
    if (rc == 0)
        rc = dp_buf_append_strs(
            url, p->base_url, p->kind == TG_PROVIDER_AZURE ? "/v1/responses" : "/responses", NULL);
    if (rc == 0)
        rc = tg_buf_append(url, "", 1);
    if (rc == 0)
        rc = dp_openai_headers(p, stream, add, ud);
    if (rc == 0)
        rc = dp_json_append(body, req);
    return rc;
}

/* A model that serves only the Responses API (responses_api "responses"): a chat body (the
 * client's, or the pivot of a Messages request) goes to {base}/responses (Azure:
 * {base}/v1/responses, the deployment in the body's model, as for the native relay), translated
 * by dp_resp_request_from_chat (store false), and the answer comes back as chat. xlate.c picks
 * this table for chat calls on such a provider; other endpoints keep the provider's own. */
static int responses_build(const dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                           tg_buf_t *body, tg_err_t *err)
{
    const tg_provider_t *p = c->provider;
    if (c->endpoint != DP_EP_CHAT) {
        tg_err_set(err, TG_EINVAL, 400, "this endpoint is not available on provider \"%s\"", p->id);
        return TG_EINVAL;
    }
    const json_t *chat = dp_reqbody_json(c->body);
    if (!chat)
        return dp_build_nomem(err, TG_ENOMEM);
    json_t *r = NULL;
    int rc = dp_resp_request_from_chat(chat, p->id, &r, err);
    if (rc != 0)
        return rc;
    rc = dp_openai_responses_request(p, r, c->model, c->body->stream, add, ud, url, body);
    json_decref(r);
    return rc == 0 ? 0 : dp_build_nomem(err, rc);
}

const dp_provider_ops_t dp_provider_openai_responses = {
    .kind = "openai",
    .stream_content_type = "text/event-stream",
    .build = responses_build,
    .response = dp_resp_upstream_response,
    .stream_feed = dp_resp_upstream_stream_feed,
    .stream_end = dp_resp_upstream_stream_end,
};
