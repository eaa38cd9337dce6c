/* fuzz_xlate.c: hostile upstream answers through the provider translators (xlate.h over every
 * adapter), driven as the proxy drives them. No answer, however malformed, truncated or split,
 * may crash, leak or hang the data plane; a stream must also give the client the same events
 * whether it arrives whole or in pieces, and what an adapter writes itself must be JSON.
 *
 * Input: five selector bytes, then the upstream answer.
 *   [0] kind = [0] % 5 (openai, azure, anthropic, gemini, bedrock); [0] / 5 % 5 is the kind of a
 *       first, abandoned attempt when [1] bit 7 is set (the proxy's retry on another target)
 *   [1] endpoint = [1] & 3 (chat, embeddings, messages, responses); bit 2 stream; bit 3 the stream
 *       ended cleanly; bit 4 the client asked for usage; bit 5 base64 embeddings; bit 6 a batch
 *       of embedding inputs (a cohere model on bedrock, titan otherwise); bit 7 retry
 *   [2] status = {200, 400, 429, 500, 529}[([2] & 7) % 5]; bit 3 a streamed request answered
 *       with JSON (not the stream's Content-Type); bit 4 the CRCs of a bedrock event stream are
 *       recomputed first, so that mutations get past the CRC checks; bit 5 an openai or azure
 *       target serves only the Responses API (responses_api "responses"): chat and messages go
 *       to its /responses through dp_provider_openai_responses, the answer a Responses object
 *       or event stream
 *   [3] the largest piece of a streamed answer, 0 = one piece; [4] seeds the piece sizes
 * The seeds (corpus/fuzz_xlate) are the upstream answers recorded in tests/golden (the
 * responses_api "responses" ones from tests/golden/chat_via_responses), each behind the selector
 * bytes of its transcript. Environment: FUZZ_XLATE_KIND=bedrock (or another kind)
 * pins the kind; FUZZ_XLATE_DEBUG=1 says what each input did and prints a mismatch.
 */
#include <stdio.h>
#include <string.h>

#include "eventstream.h"
#include "fuzz.h"
#include "tg_snap.h"
#include "xlate.h"
#include "xresp.h"

#define NKINDS 5
#define NOW_S 1764072000
#define OUT_MAX (8u << 20)

static tg_snap_t *snap;
static const tg_provider_t *providers[NKINDS]; /* by kind - 1, borrowed from snap */
static const tg_provider_t *resp_only[NKINDS]; /* openai, azure with responses_api "responses" */
static int pinned_kind;                        /* FUZZ_XLATE_KIND, else 0 */
static bool debug;                             /* FUZZ_XLATE_DEBUG: say what each input did */

static const char snapshot[] =
    "{\"version\":1,\"providers\":["
    "{\"id\":\"oa\",\"kind\":\"openai\",\"base_url\":\"http://upstream.test/v1\","
    "\"api_key\":\"sk-test\"},"
    "{\"id\":\"az\",\"kind\":\"azure\",\"base_url\":\"https://res.openai.azure.com/openai\","
    "\"api_key\":\"az-test\",\"api_version\":\"2024-10-21\"},"
    "{\"id\":\"an\",\"kind\":\"anthropic\",\"base_url\":\"http://upstream.test/v1\","
    "\"api_key\":\"sk-ant\"},"
    "{\"id\":\"gm\",\"kind\":\"gemini\",\"base_url\":\"http://upstream.test/v1beta\","
    "\"api_key\":\"gm-test\"},"
    "{\"id\":\"br\",\"kind\":\"bedrock\",\"base_url\":\"https://bedrock-runtime.us-east-1."
    "amazonaws.com\",\"region\":\"us-east-1\",\"aws_access_key_id\":\"AKIDEXAMPLE\","
    "\"aws_secret_access_key\":\"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\","
    "\"aws_session_token\":\"tok\"},"
    "{\"id\":\"oar\",\"kind\":\"openai\",\"base_url\":\"http://upstream.test/v1\","
    "\"api_key\":\"sk-test\",\"responses_api\":\"responses\"},"
    "{\"id\":\"azr\",\"kind\":\"azure\",\"base_url\":\"https://res.openai.azure.com/openai\","
    "\"api_key\":\"az-test\",\"api_version\":\"2024-10-21\",\"responses_api\":\"responses\"}]}";

/* The client bodies, without the closing brace (client_body adds the stream fields). */
static const char chat_body[] =
    "{\"model\":\"alias\",\"max_tokens\":256,\"messages\":["
    "{\"role\":\"system\",\"content\":\"Be terse.\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Paris and Oslo?\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]";
static const char msgs_body[] =
    "{\"model\":\"alias\",\"max_tokens\":256,\"system\":\"Be terse.\",\"messages\":["
    "{\"role\":\"user\",\"content\":\"Weather in Paris and Oslo?\"}],"
    "\"tools\":[{\"name\":\"get_weather\",\"input_schema\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\"}}}}]";

static const char resp_body[] =
    "{\"model\":\"alias\",\"max_output_tokens\":256,\"instructions\":\"Be terse.\","
    "\"input\":[{\"role\":\"user\",\"content\":\"Weather in Paris and Oslo?\"}],"
    "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}]";

typedef struct fcase {
    int kind;       /* TG_PROVIDER_* */
    int first_kind; /* of an abandoned first attempt, 0 for none */
    int endpoint;   /* DP_EP_* */
    bool stream, complete, wants_usage, base64, batch;
    bool stream_path; /* the answer goes through feed/end, else response */
    bool resp_only;   /* openai and azure targets serve only the Responses API */
    int status;
    size_t piece_max; /* 0: the stream in one piece */
    uint32_t seed;
} fcase_t;

typedef struct result {
    bool built;
    int feed_rc; /* the first failing feed, else 0 */
    int end_rc;
    bool done;
    dp_usage_t usage;
    tg_buf_t out; /* everything the client received */
} result_t;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    tg_err_t err;
    tg_err_clear(&err);
    FUZZ_CHECK(tg_snap_parse(snapshot, sizeof(snapshot) - 1, &snap, &err) == 0);
    FUZZ_CHECK(snap->nproviders == NKINDS + 2);
    for (size_t i = 0; i < NKINDS + 2; i++) {
        const tg_provider_t *p = &snap->providers[i];
        FUZZ_CHECK(p->kind >= 1 && p->kind <= NKINDS);
        if (p->chat_via_responses)
            resp_only[p->kind - 1] = p;
        else
            providers[p->kind - 1] = p;
    }
    FUZZ_CHECK(resp_only[TG_PROVIDER_OPENAI - 1] && resp_only[TG_PROVIDER_AZURE - 1]);
    debug = getenv("FUZZ_XLATE_DEBUG") != NULL;
    const char *pin = getenv("FUZZ_XLATE_KIND");
    if (pin && *pin) {
        pinned_kind = tg_provider_kind_parse(pin);
        FUZZ_CHECK(pinned_kind != 0);
    }
    return 0; /* snap lives as long as the process */
}

static int add_header(void *ud, const char *line)
{
    (void)ud;
    FUZZ_CHECK(line && strchr(line, ':'));
    return 0;
}

static const char *model_for(const fcase_t *c, int kind)
{
    bool embed = c->endpoint == DP_EP_EMBEDDINGS;
    switch (kind) {
    case TG_PROVIDER_AZURE:
        return "my-deployment";
    case TG_PROVIDER_ANTHROPIC:
        return "claude-3-5-haiku-20241022";
    case TG_PROVIDER_GEMINI:
        return embed ? "text-embedding-004" : "gemini-2.0-flash";
    case TG_PROVIDER_BEDROCK:
        if (embed)
            return c->batch ? "cohere.embed-english-v3" : "amazon.titan-embed-text-v2:0";
        return "anthropic.claude-3-5-haiku-20241022-v1:0";
    default:
        return embed ? "text-embedding-3-small" : "gpt-4o-mini";
    }
}

static void client_body(const fcase_t *c, tg_buf_t *b)
{
    if (c->endpoint == DP_EP_EMBEDDINGS) {
        FUZZ_CHECK(tg_buf_appendf(b, "{\"model\":\"embed\",\"input\":%s,\"dimensions\":4%s}",
                                  c->batch ? "[\"alpha\",\"beta\"]" : "\"hello world\"",
                                  c->base64 ? ",\"encoding_format\":\"base64\"" : "") == 0);
        return;
    }
    if (c->endpoint == DP_EP_MESSAGES)
        FUZZ_CHECK(tg_buf_append(b, msgs_body, sizeof(msgs_body) - 1) == 0);
    else if (c->endpoint == DP_EP_RESPONSES)
        FUZZ_CHECK(tg_buf_append(b, resp_body, sizeof(resp_body) - 1) == 0);
    else
        FUZZ_CHECK(tg_buf_append(b, chat_body, sizeof(chat_body) - 1) == 0);
    if (c->stream)
        FUZZ_CHECK(tg_buf_appendf(b, ",\"stream\":true%s",
                                  c->wants_usage && c->endpoint == DP_EP_CHAT
                                      ? ",\"stream_options\":{\"include_usage\":true}"
                                      : "") == 0);
    FUZZ_CHECK(tg_buf_append(b, "}", 1) == 0);
}

/* What the adapter wrote itself (not the upstream body passed through) must be JSON. Bytes
 * from the upstream are copied into strings as they came, so the encoding is not checked: every
 * non-ASCII byte becomes 'x' first (in valid JSON such bytes are only in strings). */
static void check_json(const char *p, size_t n)
{
    tg_buf_t ascii = TG_BUF_INIT(OUT_MAX);
    FUZZ_CHECK(tg_buf_reserve(&ascii, n + 1) == 0);
    for (size_t i = 0; i < n; i++)
        ascii.base[i] = (unsigned char)p[i] < 0x80 ? p[i] : 'x';
    json_error_t e;
    json_t *v = json_loadb(ascii.base, n, JSON_ALLOW_NUL, &e);
    if (!v && debug)
        fprintf(stderr, "not JSON (%s): %.*s\n", e.text, (int)n, p);
    FUZZ_CHECK(v != NULL);
    json_decref(v);
    tg_buf_dispose(&ascii);
}

static int build(dp_xlate_t *x, int kind, const fcase_t *c, tg_buf_t *url, tg_buf_t *body)
{
    tg_err_t err;
    tg_err_clear(&err);
    tg_buf_reset(url);
    tg_buf_reset(body);
    const tg_provider_t *p =
        c->resp_only && resp_only[kind - 1] ? resp_only[kind - 1] : providers[kind - 1];
    int rc =
        dp_xlate_build(x, p, model_for(c, kind), "req-1", NOW_S, add_header, NULL, url, body, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && err.status >= 400 && err.status < 600);
        return rc;
    }
    FUZZ_CHECK(url->len > 0 && url->base[url->len - 1] == '\0');
    return 0;
}

static void answer_json(dp_xlate_t *x, const fcase_t *c, const char *p, size_t n, tg_buf_t *out)
{
    const char *client = NULL;
    size_t client_len = 0;
    int rc = dp_xlate_response(x, c->status, p, n, out, &client, &client_len);
    if (rc < 0)
        return; /* the proxy answers 502, or passes an unreadable error on */
    FUZZ_CHECK(rc == 0 && client);
    if (client != p) {
        FUZZ_CHECK(client == out->base && client_len == out->len);
        check_json(client, client_len);
    } else {
        FUZZ_CHECK(client_len == n);
    }
}

static void run(const fcase_t *c, const char *p, size_t n, size_t piece_max, result_t *r)
{
    tg_err_t err;
    tg_err_clear(&err);
    tg_buf_t req = TG_BUF_INIT(1u << 16);
    tg_buf_t url = TG_BUF_INIT(1u << 16);
    tg_buf_t body = TG_BUF_INIT(1u << 20);
    tg_buf_t scratch = TG_BUF_INIT(OUT_MAX);
    dp_reqbody_t rb;
    dp_xlate_t x;

    memset(r, 0, sizeof(*r));
    tg_buf_init(&r->out, OUT_MAX);
    client_body(c, &req);
    FUZZ_CHECK(dp_reqbody_parse(&rb, c->endpoint, req.base, req.len, &err) == 0);
    dp_xlate_init(&x, c->endpoint, &rb, rb.include_usage);
    if (c->endpoint == DP_EP_RESPONSES)
        FUZZ_CHECK(dp_xresp_begin(&x, NULL, "t-fuzz", NULL, "resp_fuzz", &err) == 0);

    if (c->first_kind && build(&x, c->first_kind, c, &url, &body) == 0) {
        /* an attempt that failed before the client saw anything: the proxy drops what it made,
         * never ends it, and builds the next on the same xlate */
        if (c->stream_path)
            (void)dp_xlate_feed(&x, p, n, &scratch);
        else
            answer_json(&x, c, p, n, &scratch);
    }
    if (build(&x, c->kind, c, &url, &body) != 0)
        goto out;
    r->built = true;
    if (!c->stream_path) {
        answer_json(&x, c, p, n, &r->out);
        goto out;
    }
    uint32_t seed = c->seed;
    for (size_t at = 0; at < n;) {
        size_t piece = n - at;
        if (piece_max) {
            seed = seed * 1103515245u + 12345u;
            size_t k = 1 + (seed >> 16) % piece_max;
            if (k < piece)
                piece = k;
        }
        size_t before = r->out.len;
        r->feed_rc = dp_xlate_feed(&x, p + at, piece, &r->out);
        if (r->feed_rc != 0) {
            FUZZ_CHECK(r->feed_rc < 0);
            break;
        }
        /* each read completes whole events only (CR-terminated ones pass through as they came) */
        FUZZ_CHECK(r->out.len == before || r->out.base[r->out.len - 1] == '\n' ||
                   r->out.base[r->out.len - 1] == '\r');
        at += piece;
    }
    /* as the proxy: a failed feed aborts the transfer, which then ends broken */
    r->end_rc = dp_xlate_end(&x, r->feed_rc == 0 && c->complete, &r->out);
    FUZZ_CHECK(r->end_rc <= 0);
    r->done = x.st.done;
    r->usage = x.st.usage;

out:
    dp_xlate_dispose(&x);
    dp_reqbody_dispose(&rb);
    tg_buf_dispose(&req);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
    tg_buf_dispose(&scratch);
}

static bool usage_eq(const dp_usage_t *a, const dp_usage_t *b)
{
    return a->prompt == b->prompt && a->completion == b->completion && a->cached == b->cached &&
           a->reasoning == b->reasoning && a->total == b->total && a->present == b->present;
}

/* CRLF and CR line ends as LF, in place: the SSE reader passes an event on at the CR of its
 * CRLF terminator when the LF is not in the same read (and then drops the LF), so a passed-through
 * stream keeps its events but not always the exact line-end bytes. */
static void lines_normalize(tg_buf_t *b)
{
    size_t w = 0;
    for (size_t i = 0; i < b->len; i++) {
        char ch = b->base[i];
        if (ch == '\r') {
            ch = '\n';
            if (i + 1 < b->len && b->base[i + 1] == '\n')
                i++;
        }
        b->base[w++] = ch;
    }
    b->len = w;
}

/* Rewrites the prelude and message CRCs of the event-stream messages in p (a copy) for as long as
 * the framing holds, like a PNG fuzzer that skips chunk CRCs. */
static void es_fix_crcs(uint8_t *p, size_t n)
{
    for (size_t at = 0; n - at >= DP_ES_OVERHEAD;) {
        uint8_t *m = p + at;
        uint32_t total = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
        if (total < DP_ES_OVERHEAD || total > n - at)
            return;
        uint32_t crc = dp_crc32(0, m, 8);
        for (int i = 0; i < 4; i++)
            m[8 + i] = (uint8_t)(crc >> (24 - 8 * i));
        crc = dp_crc32(0, m, total - 4);
        for (int i = 0; i < 4; i++)
            m[total - 4 + i] = (uint8_t)(crc >> (24 - 8 * i));
        at += total;
    }
}

static const int statuses[] = {200, 400, 429, 500, 529};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    static const int endpoints[] = {DP_EP_CHAT, DP_EP_EMBEDDINGS, DP_EP_MESSAGES, DP_EP_RESPONSES};
    fcase_t c = {
        .kind = 1 + data[0] % NKINDS,
        .first_kind = (data[1] & 0x80) ? 1 + data[0] / NKINDS % NKINDS : 0,
        .endpoint = endpoints[data[1] & 3],
        .stream = data[1] & 0x04,
        .complete = data[1] & 0x08,
        .wants_usage = data[1] & 0x10,
        .base64 = data[1] & 0x20,
        .batch = data[1] & 0x40,
        .status = statuses[(data[2] & 7) % 5],
        .piece_max = data[3],
        .seed = data[4],
        .resp_only = data[2] & 0x20,
    };
    if (pinned_kind)
        c.kind = pinned_kind;
    if (c.endpoint == DP_EP_EMBEDDINGS)
        c.stream = false;
    /* the proxy streams only a 2xx answer with the stream's Content-Type */
    c.stream_path = c.stream && c.status == 200 && !(data[2] & 0x08);
    const char *p = (const char *)data + 5;
    size_t n = size - 5;
    tg_buf_t fixed = TG_BUF_INIT(SIZE_MAX);
    if ((data[2] & 0x10) && c.kind == TG_PROVIDER_BEDROCK && c.stream_path && n > 0) {
        FUZZ_CHECK(tg_buf_append(&fixed, p, n) == 0);
        es_fix_crcs((uint8_t *)fixed.base, n);
        p = fixed.base;
    }

    result_t split;
    run(&c, p, n, c.piece_max, &split);
    if (debug)
        fprintf(stderr,
                "kind %s%s endpoint %d status %d %s: built %d feed %d end %d done %d out %zu\n",
                tg_provider_kind_name(c.kind), c.resp_only ? " (responses only)" : "", c.endpoint,
                c.status, c.stream_path ? "stream" : "json", split.built, split.feed_rc,
                split.end_rc, split.done, split.out.len);
    if (split.built && c.stream_path && c.piece_max) {
        /* the same stream in one piece: the same client bytes, usage and end */
        result_t whole;
        run(&c, p, n, 0, &whole);
        FUZZ_CHECK(whole.built);
        if (debug) {
            fprintf(stderr, "split: feed %d end %d done %d; whole: feed %d end %d done %d\n",
                    split.feed_rc, split.end_rc, split.done, whole.feed_rc, whole.end_rc,
                    whole.done);
            fprintf(stderr, "split output:\n%.*s\nwhole output:\n%.*s\n", (int)split.out.len,
                    split.out.base ? split.out.base : "", (int)whole.out.len,
                    whole.out.base ? whole.out.base : "");
        }
        FUZZ_CHECK((whole.feed_rc == 0) == (split.feed_rc == 0));
        if (whole.feed_rc == 0) {
            FUZZ_CHECK(whole.end_rc == split.end_rc);
            FUZZ_CHECK(whole.done == split.done);
            FUZZ_CHECK(usage_eq(&whole.usage, &split.usage));
            lines_normalize(&whole.out);
            lines_normalize(&split.out);
            FUZZ_CHECK(tg_mem_eq(whole.out.base, whole.out.len, split.out.base, split.out.len));
        }
        tg_buf_dispose(&whole.out);
    }
    tg_buf_dispose(&split.out);
    tg_buf_dispose(&fixed);
    return 0;
}
