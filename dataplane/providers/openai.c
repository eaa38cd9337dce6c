/* openai.c: the OpenAI wire format, spoken by OpenAI and every OpenAI-compatible server (vLLM,
 * Ollama, Mistral, Groq, DeepSeek, Together, OpenRouter). The body passes through with the model
 * renamed; usage is forced on for streams and hidden again unless the client asked for it. */
#include "provider.h"

#include <string.h>

#include "tg_banned.h"

static const char *endpoint_path(int endpoint)
{
    switch (endpoint) {
    case DP_EP_CHAT:
        return "/chat/completions";
    case DP_EP_COMPLETIONS:
        return "/completions";
    case DP_EP_EMBEDDINGS:
        return "/embeddings";
    default:
        return NULL;
    }
}

static int openai_build_url(const tg_provider_t *p, int endpoint, const char *model, tg_buf_t *url)
{
    const char *path = endpoint_path(endpoint);
    (void)model;
    if (!path)
        return TG_EINVAL;
    return tg_buf_appendf(url, "%s%s%c", p->base_url, path, '\0');
}

static int openai_add_headers(const tg_provider_t *p, bool stream, dp_header_add_fn add, void *ud,
                              tg_buf_t *scratch)
{
    int rc = add(ud, "Content-Type: application/json");
    if (rc == 0)
        rc = add(ud, stream ? "Accept: text/event-stream" : "Accept: application/json");
    if (rc == 0)
        rc = add(ud, "Expect:"); /* no 100-continue round trip for large bodies */
    if (rc == 0 && p->api_key) {
        tg_buf_reset(scratch);
        rc = tg_buf_appendf(scratch, "Authorization: Bearer %s%c", p->api_key, '\0');
        if (rc == 0)
            rc = add(ud, scratch->base);
        /* the credential must not linger in a buffer that outlives this call */
        if (scratch->base)
            memset(scratch->base, 0, scratch->len);
        tg_buf_reset(scratch);
    }
    for (size_t i = 0; rc == 0 && i < p->nheaders; i++)
        rc = add(ud, p->headers[i]);
    return rc;
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

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

/* The chunk carries a usage object: record it and, if the client did not ask for usage, take it
 * out again (dropping the chunk when usage is all it carries). */
static int on_usage_chunk(dp_stream_state_t *st, const char *data, size_t n, const char **out,
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
            if (json_dump_callback(root, dump_cb, &st->data_scratch, JSON_COMPACT) != 0)
                rc = TG_ENOMEM;
            else
                rc = replace_data(st, st->data_scratch.base, st->data_scratch.len, out, outn);
        }
    }
    json_decref(root);
    return rc;
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

static bool openai_parse_usage(const char *body, size_t n, dp_usage_t *u)
{
    return dp_usage_scan(u, body, n);
}

const dp_provider_ops_t dp_provider_openai = {
    .kind = "openai",
    .build_url = openai_build_url,
    .add_headers = openai_add_headers,
    .build_body = dp_reqbody_build_upstream,
    .on_event = openai_on_event,
    .parse_usage = openai_parse_usage,
};

const dp_provider_ops_t *dp_provider_ops(int kind)
{
    switch (kind) {
    case TG_PROVIDER_OPENAI:
        return &dp_provider_openai;
    default:
        return NULL;
    }
}

void dp_stream_state_init(dp_stream_state_t *st, bool client_wants_usage)
{
    memset(st, 0, sizeof(*st));
    st->client_wants_usage = client_wants_usage;
    tg_buf_init(&st->scratch, 4u << 20);
    tg_buf_init(&st->data_scratch, 4u << 20);
}

void dp_stream_state_dispose(dp_stream_state_t *st)
{
    tg_buf_dispose(&st->scratch);
    tg_buf_dispose(&st->data_scratch);
}
