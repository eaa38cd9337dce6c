/* fuzz_responses.c: the Responses API translators (responses.h) over hostile input: a client's
 * request, and a chat answer or stream from the provider. Nothing may crash, leak or hang; a
 * stream must give the same events whether it arrives whole or in pieces, and every event must
 * be what the openai SDK's assembler requires: an `event:` line equal to data.type,
 * sequence_number 0, 1, 2, ..., response.created first, output_item.added at the next
 * output_index, item events naming the item at their output_index, one terminal event, last.
 *
 * Input: two selector bytes, then the request and the answer separated by the first NUL byte
 * (no NUL: a fixed request, all of it the answer).
 *   [0] bit 0: a JSON answer (else a stream); bit 1: the stream ended cleanly; bit 2: the gateway
 *       fails the stream at the end (dp_resp_stream_fail); bits 3-5: the JSON answer's status
 *       from {200, 400, 429, 500, 502, 201, 204, 599}
 *       bit 6: the reverse direction (responses_upstream.h): the request is a chat body, the
 *       answer a Responses object or event stream, the output chat chunks
 *   [1] the largest piece of the stream, 0 = one piece; also seeds the piece sizes
 * The seeds (corpus/fuzz_responses) are the chat streams and answers of tests/unit/responses.
 */
#include <string.h>

#include "fuzz.h"
#include "responses.h"
#include "responses_upstream.h"

#define OUT_MAX (16u << 20)
#define MAX_TRACKED 1024

static const char default_request[] =
    "{\"model\":\"m\",\"instructions\":\"Be terse.\",\"input\":\"Weather?\",\"stream\":true,"
    "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":{\"type\":"
    "\"object\"}}]}";

/* item_reference: the stored items of the request's own "refs" object. */
static const json_t *lookup(void *ud, const char *id, size_t n)
{
    return json_object_getn(json_object_get(ud, "refs"), id, n);
}

static void check_request(const json_t *req)
{
    json_t *chat = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    int rc = dp_resp_request_to_chat(req, json_object_get(req, "prefix"), lookup, (void *)req,
                                     "fuzz", &chat, &err);
    if (rc == 0) {
        FUZZ_CHECK(json_is_object(chat));
        FUZZ_CHECK(json_array_size(json_object_get(chat, "messages")) > 0);
        FUZZ_CHECK(json_is_string(json_object_get(chat, "model")));
    } else {
        FUZZ_CHECK(chat == NULL);
        FUZZ_CHECK(err.status == 400 || err.status == 413 || err.status == 503);
        FUZZ_CHECK(err.msg[0] != '\0');
    }
    json_decref(chat);
    /* what the gateway stores, and what it sends a native upstream */
    json_t *items = NULL;
    tg_err_clear(&err);
    if (dp_resp_input_items(req, "resp_fuzz", lookup, (void *)req, &items, &err) == 0)
        FUZZ_CHECK(json_is_array(items));
    else
        FUZZ_CHECK(items == NULL && err.msg[0] != '\0');
    json_decref(items);
    json_t *native = NULL;
    if (dp_resp_request_inline(req, json_object_get(req, "prefix"), lookup, (void *)req, &native,
                               &err) == 0) {
        FUZZ_CHECK(json_is_array(json_object_get(native, "input")));
        FUZZ_CHECK(json_object_get(native, "previous_response_id") == NULL);
        FUZZ_CHECK(json_is_false(json_object_get(native, "store")));
    }
    json_decref(native);
}

/* The SDK's rules over one whole output (see the top of the file). */
static void check_events(const tg_buf_t *b, bool must_end)
{
    static char ids[MAX_TRACKED][200];
    size_t added = 0;
    long long seq = 0;
    bool terminal = false;
    size_t off = 0;
    while (off < b->len) {
        const char *ev = b->base + off;
        size_t rest = b->len - off;
        const char *end = NULL;
        for (size_t i = 0; i + 1 < rest; i++)
            if (ev[i] == '\n' && ev[i + 1] == '\n') {
                end = ev + i;
                break;
            }
        FUZZ_CHECK(end != NULL);
        FUZZ_CHECK(rest > 7 && memcmp(ev, "event: ", 7) == 0);
        const char *nl = memchr(ev, '\n', (size_t)(end - ev));
        FUZZ_CHECK(nl && end - nl > 7 && memcmp(nl + 1, "data: ", 6) == 0);
        json_t *d = json_loadb(nl + 7, (size_t)(end - nl - 7), 0, NULL);
        FUZZ_CHECK(json_is_object(d));
        const json_t *type = json_object_get(d, "type");
        const char *t = json_string_value(type);
        FUZZ_CHECK(t && tg_mem_eq(t, json_string_length(type), ev + 7, (size_t)(nl - ev - 7)));
        FUZZ_CHECK(json_integer_value(json_object_get(d, "sequence_number")) == seq);
        FUZZ_CHECK(!terminal);
        FUZZ_CHECK(seq != 0 || strcmp(t, "response.created") == 0);
        const json_t *oi = json_object_get(d, "output_index");
        if (strcmp(t, "response.output_item.added") == 0) {
            const json_t *id = json_object_get(json_object_get(d, "item"), "id");
            FUZZ_CHECK(json_integer_value(oi) == (json_int_t)added);
            FUZZ_CHECK(json_is_string(id) && json_string_length(id) > 0 &&
                       json_string_length(id) < sizeof(ids[0]));
            if (added < MAX_TRACKED)
                memcpy(ids[added], json_string_value(id), json_string_length(id) + 1);
            added++;
        } else if (oi) {
            FUZZ_CHECK(json_is_integer(oi) && json_integer_value(oi) >= 0 &&
                       (size_t)json_integer_value(oi) < added);
            size_t k = (size_t)json_integer_value(oi);
            const json_t *item_id = json_object_get(d, "item_id");
            const json_t *item = json_object_get(d, "item");
            const json_t *id = item_id ? item_id : json_object_get(item, "id");
            FUZZ_CHECK(json_is_string(id));
            FUZZ_CHECK(k >= MAX_TRACKED || strcmp(json_string_value(id), ids[k]) == 0);
        }
        terminal = strcmp(t, "response.completed") == 0 || strcmp(t, "response.failed") == 0 ||
                   strcmp(t, "response.incomplete") == 0;
        if (terminal)
            FUZZ_CHECK(json_is_object(json_object_get(d, "response")));
        json_decref(d);
        seq++;
        off = (size_t)(end + 2 - b->base);
    }
    FUZZ_CHECK(!must_end || terminal);
}

static void run_stream(const json_t *skel, const char *p, size_t n, size_t piece, uint32_t seed,
                       bool complete, bool fail, tg_buf_t *out)
{
    dp_resp_stream_t *s = dp_resp_stream_create(skel);
    FUZZ_CHECK(s != NULL);
    for (size_t off = 0; off < n;) {
        size_t k = n - off;
        if (piece > 0) {
            seed = seed * 1103515245u + 12345u;
            k = 1 + (seed >> 16) % piece;
            if (k > n - off)
                k = n - off;
        }
        /* a translation error (too big, no memory) ends the request; what was written stays */
        if (dp_resp_stream_feed(s, p + off, k, out) != 0)
            break;
        off += k;
    }
    (void)dp_resp_stream_end(s, complete, out);
    if (fail)
        (void)dp_resp_stream_fail(s, 502, "cut", 3, out);
    dp_resp_stream_destroy(s);
}

/* Chat chunks: each `data: <JSON>` or `data: [DONE]`, nothing after [DONE] or an error. */
static void check_chunks(const tg_buf_t *b)
{
    size_t off = 0;
    bool ended = false;
    while (off < b->len) {
        const char *ev = b->base + off;
        const char *end = tg_memmem(ev, b->len - off, "\n\n", 2);
        FUZZ_CHECK(end && end - ev > 6 && memcmp(ev, "data: ", 6) == 0);
        FUZZ_CHECK(!ended);
        if (tg_mem_eq(ev + 6, (size_t)(end - ev - 6), "[DONE]", 6)) {
            ended = true;
        } else {
            json_t *j = json_loadb(ev + 6, (size_t)(end - ev - 6), 0, NULL);
            FUZZ_CHECK(json_is_object(j));
            ended = json_object_get(j, "error") != NULL;
            json_decref(j);
        }
        off = (size_t)(end + 2 - b->base);
    }
}

static void run_upstream(const char *p, size_t n, size_t piece, uint32_t seed, bool complete,
                         tg_buf_t *out)
{
    dp_stream_state_t st;
    dp_stream_state_init(&st, DP_EP_CHAT, true);
    st.model = "m";
    st.request_id = "req-1";
    for (size_t off = 0; off < n;) {
        size_t k = n - off;
        if (piece > 0) {
            seed = seed * 1103515245u + 12345u;
            k = 1 + (seed >> 16) % piece;
            if (k > n - off)
                k = n - off;
        }
        if (dp_resp_upstream_stream_feed(&st, p + off, k, out) != 0)
            break; /* the proxy ends the stream with its error event */
        off += k;
    }
    (void)dp_resp_upstream_stream_end(&st, complete, out);
    dp_stream_state_dispose(&st);
}

static void reverse(const uint8_t *data, const json_t *req, const char *ans, size_t an)
{
    json_t *r = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    if (dp_resp_request_from_chat(req, "fuzz", &r, &err) == 0)
        FUZZ_CHECK(json_is_array(json_object_get(r, "input")));
    else
        FUZZ_CHECK(r == NULL && err.msg[0] != '\0');
    json_decref(r);
    if (data[0] & 1) {
        static const int statuses[] = {200, 400, 429, 500};
        dp_stream_state_t st;
        dp_stream_state_init(&st, DP_EP_CHAT, false);
        tg_buf_t out = TG_BUF_INIT(OUT_MAX);
        int rc = dp_resp_upstream_response(&st, statuses[(data[0] >> 3) & 3], ans, an, &out);
        if (rc == DP_RESP_OUT) {
            json_t *v = json_loadb(out.base, out.len, 0, NULL);
            FUZZ_CHECK(json_is_object(v));
            json_decref(v);
        }
        tg_buf_dispose(&out);
        dp_stream_state_dispose(&st);
        return;
    }
    tg_buf_t whole = TG_BUF_INIT(OUT_MAX);
    tg_buf_t split = TG_BUF_INIT(OUT_MAX);
    run_upstream(ans, an, 0, 0, data[0] & 2, &whole);
    run_upstream(ans, an, data[1], data[1], data[0] & 2, &split);
    FUZZ_CHECK(whole.len == split.len &&
               (whole.len == 0 || memcmp(whole.base, split.base, whole.len) == 0));
    check_chunks(&whole);
    tg_buf_dispose(&whole);
    tg_buf_dispose(&split);
    /* the native pass-through watch sees the same terminal response however the bytes come */
    dp_resp_watch_t *w1 = dp_resp_watch_create();
    dp_resp_watch_t *w2 = dp_resp_watch_create();
    FUZZ_CHECK(w1 && w2);
    int r1 = dp_resp_watch_feed(w1, ans, an);
    int r2 = 0;
    for (size_t off = 0; off < an && r2 == 0; off += 3)
        r2 = dp_resp_watch_feed(w2, ans + off, an - off < 3 ? an - off : 3);
    FUZZ_CHECK(r1 == r2);
    const json_t *a = dp_resp_watch_response(w1);
    const json_t *b = dp_resp_watch_response(w2);
    FUZZ_CHECK((a == NULL) == (b == NULL) && (!a || json_equal(a, b)));
    dp_resp_watch_destroy(w1);
    dp_resp_watch_destroy(w2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {200, 400, 429, 500, 502, 201, 204, 599};
    if (size < 2)
        return 0;
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    const char *nul = memchr(in, '\0', n);
    json_t *req =
        nul ? json_loadb(in, (size_t)(nul - in), 0, NULL) : json_loads(default_request, 0, NULL);
    const char *ans = nul ? nul + 1 : in;
    size_t an = nul ? n - (size_t)(nul + 1 - in) : n;
    if (data[0] & 0x40) {
        reverse(data, req, ans, an);
        json_decref(req);
        return 0;
    }
    check_request(req);

    json_t *skel = dp_resp_skeleton(req, "resp_fuzz", "m", 1764072000);
    FUZZ_CHECK(skel != NULL);
    if (data[0] & 1) {
        tg_buf_t out = TG_BUF_INIT(OUT_MAX);
        json_t *final = NULL;
        int rc =
            dp_resp_response_from_chat(skel, statuses[(data[0] >> 3) & 7], ans, an, &out, &final);
        if (rc == 0) {
            json_t *v = json_loadb(out.base, out.len, 0, NULL);
            FUZZ_CHECK(json_is_object(v));
            FUZZ_CHECK(!final || json_equal(v, final));
            json_decref(v);
        }
        json_decref(final);
        tg_buf_dispose(&out);
    } else {
        bool complete = data[0] & 2;
        bool fail = data[0] & 4;
        tg_buf_t whole = TG_BUF_INIT(OUT_MAX);
        tg_buf_t split = TG_BUF_INIT(OUT_MAX);
        run_stream(skel, ans, an, 0, 0, complete, fail, &whole);
        run_stream(skel, ans, an, data[1], data[1], complete, fail, &split);
        FUZZ_CHECK(whole.len == split.len &&
                   (whole.len == 0 || memcmp(whole.base, split.base, whole.len) == 0));
        check_events(&whole, complete || fail);
        tg_buf_dispose(&whole);
        tg_buf_dispose(&split);
    }
    json_decref(skel);
    json_decref(req);
    return 0;
}
