/* fuzz_sse.c: SSE reassembly and the OpenAI stream rewrite over arbitrary bytes. The input is fed
 * whole and in pieces; both must yield the same events, data and rewrites. */
#include <string.h>

#include "fuzz.h"
#include "provider.h"
#include "sse.h"

typedef struct run {
    dp_stream_state_t st;
    tg_buf_t transcript; /* per event: has data, data, action, rewritten bytes */
    tg_buf_t scratch;
    tg_buf_t out; /* what the OpenAI adapter gives the client for one event */
} run_t;

/* What the adapter did with one event. */
enum { EV_FORWARD = 0, EV_DROP = 1, EV_REPLACE = 2 };

static void put(tg_buf_t *b, const void *p, size_t n)
{
    /* length-prefixed so that concatenations cannot collide */
    FUZZ_CHECK(tg_buf_append(b, &n, sizeof(n)) == 0);
    FUZZ_CHECK(tg_buf_append(b, p, n) == 0);
}

static int on_event(void *ud, const char *ev, size_t n)
{
    run_t *r = ud;
    const char *d;
    size_t dl;
    FUZZ_CHECK(n > 0);
    bool has = dp_sse_data(ev, n, &r->scratch, &d, &dl);
    put(&r->transcript, has ? "D" : "-", 1);
    if (has)
        put(&r->transcript, d, dl);
    /* one whole event through the adapter's own reassembler: it completes it at once */
    tg_buf_reset(&r->out);
    FUZZ_CHECK(dp_provider_openai.stream_feed(&r->st, ev, n, &r->out) == 0);
    const char *out = r->out.base;
    size_t outn = r->out.len;
    int act = outn == 0 ? EV_DROP : tg_mem_eq(out, outn, ev, n) ? EV_FORWARD : EV_REPLACE;
    put(&r->transcript, &act, sizeof(act));
    if (act == EV_REPLACE) {
        FUZZ_CHECK(out && outn >= 8);
        FUZZ_CHECK(memcmp(out, "data: ", 6) == 0 && memcmp(out + outn - 2, "\n\n", 2) == 0);
        put(&r->transcript, out, outn);
    }
    return 0;
}

static void run_init(run_t *r, bool wants_usage)
{
    dp_stream_state_init(&r->st, DP_EP_CHAT, wants_usage);
    tg_buf_init(&r->transcript, 64u << 20);
    tg_buf_init(&r->scratch, 1u << 20);
    tg_buf_init(&r->out, 8u << 20);
}

static void run_dispose(run_t *r)
{
    dp_stream_state_dispose(&r->st);
    tg_buf_dispose(&r->transcript);
    tg_buf_dispose(&r->scratch);
    tg_buf_dispose(&r->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    bool wants_usage = data[0] & 1;
    size_t max_small = 16 + (size_t)data[1] * 4;
    uint32_t seed = data[0] | (uint32_t)data[1] << 8;
    const char *in = (const char *)data + 2;
    size_t n = size - 2;

    /* whole, with room for any event */
    run_t whole;
    dp_sse_t s;
    run_init(&whole, wants_usage);
    dp_sse_init(&s, n + 1);
    FUZZ_CHECK(dp_sse_feed(&s, in, n, on_event, &whole) == 0);
    size_t pending_whole = dp_sse_pending(&s);
    dp_sse_dispose(&s);

    /* in pieces, same room: same events */
    run_t split;
    run_init(&split, wants_usage);
    dp_sse_init(&s, n + 1);
    for (size_t at = 0; at < n;) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 48;
        if (piece > n - at)
            piece = n - at;
        FUZZ_CHECK(dp_sse_feed(&s, in + at, piece, on_event, &split) == 0);
        at += piece;
    }
    FUZZ_CHECK(dp_sse_pending(&s) == pending_whole);
    dp_sse_dispose(&s);
    FUZZ_CHECK(tg_mem_eq(whole.transcript.base, whole.transcript.len, split.transcript.base,
                         split.transcript.len));
    FUZZ_CHECK(whole.st.done == split.st.done);
    FUZZ_CHECK(whole.st.content_events == split.st.content_events);
    FUZZ_CHECK(memcmp(&whole.st.usage, &split.st.usage, sizeof(whole.st.usage)) == 0);
    run_dispose(&split);
    run_dispose(&whole);

    /* a byte at a time with a small maximum: TG_ETOOBIG is the only failure */
    run_t small;
    run_init(&small, wants_usage);
    dp_sse_init(&s, max_small);
    for (size_t i = 0; i < n; i++) {
        int rc = dp_sse_feed(&s, in + i, 1, on_event, &small);
        if (rc != 0) {
            FUZZ_CHECK(rc == TG_ETOOBIG);
            break;
        }
        FUZZ_CHECK(dp_sse_pending(&s) <= max_small);
    }
    dp_sse_dispose(&s);
    run_dispose(&small);
    return 0;
}
