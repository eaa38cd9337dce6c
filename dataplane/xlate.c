/* xlate.c: the adapter of the current attempt, plus the Anthropic Messages translator when the
 * client speaks Messages and the provider does not. Runs on the request's loop thread. */
#include "xlate.h"

#include <stdlib.h>
#include <string.h>

#include "tg_errors.h"
#include "xresp.h"

#include "tg_banned.h"

void dp_xlate_init(dp_xlate_t *x, int client_endpoint, dp_reqbody_t *body, bool client_wants_usage)
{
    memset(x, 0, sizeof(*x));
    x->client_endpoint = client_endpoint;
    x->client_body = body;
    /* a translated Messages stream needs OpenAI's usage chunk: Anthropic's message_delta
     * carries the usage */
    dp_stream_state_init(&x->st, client_endpoint,
                         client_wants_usage || client_endpoint == DP_EP_MESSAGES ||
                             client_endpoint == DP_EP_RESPONSES);
    tg_buf_init(&x->mid, 8u << 20);
}

void dp_xlate_dispose(dp_xlate_t *x)
{
    if (x->have_pivot) {
        dp_reqbody_dispose(x->pivot);
        free(x->pivot);
    }
    dp_msgs_stream_destroy(x->ms);
    dp_xresp_destroy(x->resp);
    dp_stream_state_dispose(&x->st);
    tg_buf_dispose(&x->mid);
}

/* The OpenAI chat body a Messages request becomes, made once and reused by later attempts. */
static int make_pivot(dp_xlate_t *x, tg_err_t *err)
{
    if (x->have_pivot)
        return 0;
    json_t *oa = NULL;
    const json_t *client = dp_reqbody_json(x->client_body);
    if (!client) {
        tg_err_set(err, TG_ENOMEM, 503, "could not build the upstream request: out of memory");
        return TG_ENOMEM;
    }
    /* on demand: a body struct is 432 bytes, and a request keeps its translator for its life */
    dp_reqbody_t *pv = calloc(1, sizeof(*pv));
    if (!pv) {
        tg_err_set(err, TG_ENOMEM, 503, "could not build the upstream request: out of memory");
        return TG_ENOMEM;
    }
    int rc = dp_msgs_request_to_openai(client, &oa, err);
    if (rc != 0) {
        free(pv);
        return rc;
    }
    pv->tree = oa; /* no raw bytes: the pivot is built and dumped as a tree */
    pv->model = x->client_body->model;
    pv->model_len = x->client_body->model_len;
    pv->stream = x->client_body->stream;
    pv->include_usage = true;
    pv->max_tokens = x->client_body->max_tokens;
    x->pivot = pv;
    x->have_pivot = true;
    return 0;
}

int dp_xlate_build(dp_xlate_t *x, const tg_provider_t *p, const char *model, const char *request_id,
                   int64_t now_s, dp_header_add_fn add, void *ud, tg_buf_t *url, tg_buf_t *body,
                   tg_err_t *err)
{
    x->ops = dp_provider_ops(p->kind);
    if (!x->ops) {
        tg_err_set(err, TG_EINVAL, 502, "provider \"%s\" has a kind this data plane cannot serve",
                   p->id);
        return TG_EINVAL;
    }
    dp_stream_state_reset(&x->st);
    dp_msgs_stream_destroy(x->ms);
    x->ms = NULL;
    x->st.model = model;
    x->st.request_id = request_id;
    x->st.created = now_s;
    dp_call_t c = {.provider = p,
                   .model = model,
                   .endpoint = x->client_endpoint,
                   .body = x->client_body,
                   .request_id = request_id,
                   .now_s = now_s,
                   .anthropic_beta = x->anthropic_beta};
    if (x->resp) {
        c.body = NULL; /* xresp.c builds the body it sends */
        return dp_xresp_build(x, &c, add, ud, url, body, err);
    }
    x->via_messages = x->client_endpoint == DP_EP_MESSAGES && !x->ops->native_messages;
    x->st.endpoint = x->client_endpoint;
    if (x->via_messages) {
        int rc = make_pivot(x, err);
        if (rc != 0)
            return rc;
        c.endpoint = DP_EP_CHAT;
        c.body = x->pivot;
        x->st.endpoint = DP_EP_CHAT;
        if (x->client_body->stream) {
            x->ms = dp_msgs_stream_create(model, request_id);
            if (!x->ms) {
                tg_err_set(err, TG_ENOMEM, 503, "out of memory");
                return TG_ENOMEM;
            }
        }
    }
    /* a model that serves only the Responses API: chat (and the Messages pivot) goes there */
    if (c.endpoint == DP_EP_CHAT && p->chat_via_responses &&
        (p->kind == TG_PROVIDER_OPENAI || p->kind == TG_PROVIDER_AZURE))
        x->ops = &dp_provider_openai_responses;
    x->st.body = c.body;
    return x->ops->build(&c, add, ud, url, body, err);
}

int dp_xlate_response(dp_xlate_t *x, int status, const char *body, size_t n, tg_buf_t *out,
                      const char **client, size_t *client_len)
{
    if (x->resp)
        return dp_xresp_response(x, status, body, n, out, client, client_len);
    tg_buf_t *first = x->via_messages ? &x->mid : out;
    tg_buf_reset(first);
    int rc = x->ops->response(&x->st, status, body, n, first);
    if (rc < 0)
        return rc;
    if (rc == DP_RESP_OUT) {
        body = first->base ? first->base : "";
        n = first->len;
    }
    if (x->via_messages) {
        tg_buf_reset(out);
        rc = dp_msgs_response_from_openai(status, body, n, x->st.model, out);
        if (rc != 0)
            return rc;
        body = out->base ? out->base : "";
        n = out->len;
    }
    *client = body;
    *client_len = n;
    return 0;
}

int dp_xlate_feed(dp_xlate_t *x, const char *p, size_t n, tg_buf_t *out)
{
    if (x->resp)
        return dp_xresp_feed(x, p, n, out);
    if (!x->via_messages)
        return x->ops->stream_feed(&x->st, p, n, out);
    tg_buf_reset(&x->mid);
    int rc = x->ops->stream_feed(&x->st, p, n, &x->mid);
    if (rc == 0 && x->mid.len > 0)
        rc = dp_msgs_stream_feed(x->ms, x->mid.base, x->mid.len, out);
    return rc;
}

int dp_xlate_end(dp_xlate_t *x, bool complete, tg_buf_t *out)
{
    if (x->resp)
        return dp_xresp_end(x, complete, out);
    if (!x->via_messages)
        return x->ops->stream_end(&x->st, complete, out);
    tg_buf_reset(&x->mid);
    int rc = x->ops->stream_end(&x->st, complete, &x->mid);
    if (rc == 0 && x->mid.len > 0)
        rc = dp_msgs_stream_feed(x->ms, x->mid.base, x->mid.len, out);
    if (rc == 0)
        rc = dp_msgs_stream_end(x->ms, complete, out);
    return rc;
}

int dp_xlate_error_body(int client_endpoint, const tg_err_t *err, tg_buf_t *b)
{
    if (client_endpoint == DP_EP_MESSAGES)
        return dp_msgs_error_append(b, err->status, err->msg, strlen(err->msg));
    return tg_error_body(b, err->status, err->type, err->msg, strlen(err->msg), err->param,
                         err->ecode);
}

int dp_xlate_error_event(int client_endpoint, const tg_err_t *err, tg_buf_t *out)
{
    if (client_endpoint == DP_EP_MESSAGES)
        return dp_msgs_error_event_append(out, err->status, err->msg, strlen(err->msg));
    size_t mark = out->len;
    int rc = tg_buf_append(out, "data: ", 6);
    if (rc == 0)
        rc = dp_xlate_error_body(client_endpoint, err, out);
    if (rc == 0)
        rc = tg_buf_append(out, "\n\n", 2);
    if (rc != 0)
        out->len = mark;
    return rc;
}

int dp_xlate_fail_event(dp_xlate_t *x, const tg_err_t *err, tg_buf_t *out)
{
    if (x->resp)
        return dp_xresp_fail_event(x, err, out);
    return dp_xlate_error_event(x->client_endpoint, err, out);
}

const char *dp_xlate_stream_content_type(const dp_xlate_t *x)
{
    return x->ops && x->ops->stream_content_type ? x->ops->stream_content_type
                                                 : "text/event-stream";
}
