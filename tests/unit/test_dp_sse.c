/* test_dp_sse.c: SSE event reassembly across arbitrary read boundaries, and data extraction. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sse.h"

#define MAX_EVENTS 32

/* Events a feed produced: raw bytes and the data field of each. */
typedef struct seen {
    int n;
    tg_buf_t raw[MAX_EVENTS];
    tg_buf_t data[MAX_EVENTS];
    bool has_data[MAX_EVENTS];
    int stop_after; /* return non-zero from the callback after this many events; 0 = never */
} seen_t;

static void seen_init(seen_t *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < MAX_EVENTS; i++) {
        tg_buf_init(&s->raw[i], 1 << 16);
        tg_buf_init(&s->data[i], 1 << 16);
    }
}

static void seen_dispose(seen_t *s)
{
    for (int i = 0; i < MAX_EVENTS; i++) {
        tg_buf_dispose(&s->raw[i]);
        tg_buf_dispose(&s->data[i]);
    }
}

static int on_event(void *ud, const char *ev, size_t n)
{
    seen_t *s = ud;
    tg_buf_t scratch = TG_BUF_INIT(1 << 16);
    const char *d;
    size_t dl;
    cr_assert_lt(s->n, MAX_EVENTS);
    cr_assert_eq(tg_buf_append(&s->raw[s->n], ev, n), 0);
    s->has_data[s->n] = dp_sse_data(ev, n, &scratch, &d, &dl);
    if (s->has_data[s->n])
        cr_assert_eq(tg_buf_append(&s->data[s->n], d, dl), 0);
    tg_buf_dispose(&scratch);
    s->n++;
    if (s->stop_after && s->n == s->stop_after)
        return 99;
    return 0;
}

static int feed_str(dp_sse_t *s, const char *str, seen_t *w)
{
    return dp_sse_feed(s, str, strlen(str), on_event, w);
}

/* Feeds `in` cut at the given points (ascending, each < n), checking every call succeeds. */
static void feed_split(seen_t *out, const char *in, size_t n, const size_t *cuts, size_t ncuts)
{
    dp_sse_t s;
    size_t at = 0;
    dp_sse_init(&s, 1 << 16);
    seen_init(out);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        cr_assert_eq(dp_sse_feed(&s, in + at, end - at, on_event, out), 0);
        at = end;
    }
    cr_assert_eq(dp_sse_pending(&s), 0, "bytes left pending");
    dp_sse_dispose(&s);
}

static void feed_bytewise(seen_t *out, const char *in, size_t n)
{
    dp_sse_t s;
    dp_sse_init(&s, 1 << 16);
    seen_init(out);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(dp_sse_feed(&s, in + i, 1, on_event, out), 0);
    cr_assert_eq(dp_sse_pending(&s), 0, "bytes left pending");
    dp_sse_dispose(&s);
}

static bool buf_is(const tg_buf_t *b, const char *s)
{
    return tg_mem_eq(b->base, b->len, s, strlen(s));
}

/* Compares the data fields and raw bytes of two feeds; unless raw is set, up to the LF of a
 * final CRLF. */
static void assert_same_events(const seen_t *a, const seen_t *b, bool raw, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %d events, want %d", what, b->n, a->n);
    for (int i = 0; i < a->n; i++) {
        cr_assert_eq(a->has_data[i], b->has_data[i], "%s: event %d", what, i);
        cr_assert(tg_mem_eq(a->data[i].base, a->data[i].len, b->data[i].base, b->data[i].len),
                  "%s: event %d data [%.*s] want [%.*s]", what, i, (int)b->data[i].len,
                  b->data[i].base, (int)a->data[i].len, a->data[i].base);
        size_t alen = a->raw[i].len, blen = b->raw[i].len;
        if (!raw) {
            /* CRLF events: the final LF may be cut off into the next read and is then dropped */
            if (alen >= 2 && a->raw[i].base[alen - 1] == '\n' && a->raw[i].base[alen - 2] == '\r')
                alen--;
            if (blen >= 2 && b->raw[i].base[blen - 1] == '\n' && b->raw[i].base[blen - 2] == '\r')
                blen--;
        }
        cr_assert(tg_mem_eq(a->raw[i].base, alen, b->raw[i].base, blen),
                  "%s: event %d raw [%.*s] want [%.*s]", what, i, (int)b->raw[i].len,
                  b->raw[i].base, (int)a->raw[i].len, a->raw[i].base);
    }
}

static const char OPENAI_STREAM[] =
    "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}],\"usage\":null}\n\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\\nlo\"}}],\"usage\":null}\n\n"
    "event: message\nid: 7\ndata: {\"a\":1}\n\n"
    "data: "
    "{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n"
    "data: [DONE]\n\n";

Test(dp_sse, whole_stream_yields_each_event_with_its_terminator)
{
    seen_t w;
    feed_split(&w, OPENAI_STREAM, sizeof(OPENAI_STREAM) - 1, NULL, 0);
    cr_assert_eq(w.n, 6);
    cr_assert(buf_is(&w.raw[1], ": keep-alive\n\n"));
    cr_assert_not(w.has_data[1]);
    cr_assert(buf_is(&w.raw[5], "data: [DONE]\n\n"));
    cr_assert(buf_is(&w.data[5], "[DONE]"));
    cr_assert(buf_is(&w.data[3], "{\"a\":1}"));
    cr_assert(buf_is(&w.raw[3], "event: message\nid: 7\ndata: {\"a\":1}\n\n"));
    seen_dispose(&w);
}

Test(dp_sse, split_at_every_byte_boundary_yields_same_events)
{
    const size_t n = sizeof(OPENAI_STREAM) - 1;
    seen_t whole;
    feed_split(&whole, OPENAI_STREAM, n, NULL, 0);
    for (size_t cut = 1; cut < n; cut++) {
        seen_t got;
        char what[32];
        snprintf(what, sizeof(what), "cut at %zu", cut);
        feed_split(&got, OPENAI_STREAM, n, &cut, 1);
        assert_same_events(&whole, &got, true, what);
        seen_dispose(&got);
    }
    seen_dispose(&whole);
}

Test(dp_sse, split_at_every_pair_of_boundaries_yields_same_events)
{
    static const char in[] = "data: a\n\n: c\n\ndata: b\ndata: c\n\ndata: [DONE]\n\n";
    const size_t n = sizeof(in) - 1;
    seen_t whole;
    feed_split(&whole, in, n, NULL, 0);
    cr_assert_eq(whole.n, 4);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            size_t cuts[2] = {i, j};
            seen_t got;
            char what[40];
            snprintf(what, sizeof(what), "cuts at %zu,%zu", i, j);
            feed_split(&got, in, n, cuts, 2);
            assert_same_events(&whole, &got, true, what);
            seen_dispose(&got);
        }
    seen_dispose(&whole);
}

Test(dp_sse, one_byte_at_a_time_yields_same_events)
{
    const size_t n = sizeof(OPENAI_STREAM) - 1;
    seen_t whole, got;
    feed_split(&whole, OPENAI_STREAM, n, NULL, 0);
    feed_bytewise(&got, OPENAI_STREAM, n);
    assert_same_events(&whole, &got, true, "bytewise");
    seen_dispose(&whole);
    seen_dispose(&got);
}

Test(dp_sse, crlf_line_endings_end_events)
{
    static const char in[] = "data: one\r\n\r\n: ping\r\n\r\ndata: two\r\ndata: 2b\r\n\r\n";
    seen_t w;
    feed_split(&w, in, sizeof(in) - 1, NULL, 0);
    cr_assert_eq(w.n, 3);
    cr_assert(buf_is(&w.raw[0], "data: one\r\n\r\n"));
    cr_assert(buf_is(&w.data[0], "one"));
    cr_assert_not(w.has_data[1]);
    cr_assert(buf_is(&w.data[2], "two\n2b"));
    seen_dispose(&w);
}

Test(dp_sse, cr_only_line_endings_end_events)
{
    static const char in[] = "data: one\r\rdata: two\rdata: 2b\r\r";
    seen_t w;
    feed_split(&w, in, sizeof(in) - 1, NULL, 0);
    cr_assert_eq(w.n, 2);
    cr_assert(buf_is(&w.data[0], "one"));
    cr_assert(buf_is(&w.data[1], "two\n2b"));
    seen_dispose(&w);
}

Test(dp_sse, crlf_stream_split_anywhere_yields_same_data)
{
    /* the raw bytes of a CRLF event may lose its final LF when the read ends between CR and
     * LF (the CR already ended the event); nothing else may change, nothing stays pending */
    static const char in[] = "data: one\r\n\r\n: ping\r\n\r\n\r\ndata: two\r\ndata: 2b\r\n\r\n"
                             "\r\n\r\ndata: [DONE]\r\n\r\n";
    const size_t n = sizeof(in) - 1;
    seen_t whole, got;
    feed_split(&whole, in, n, NULL, 0);
    cr_assert_eq(whole.n, 4);
    for (size_t cut = 1; cut < n; cut++) {
        char what[32];
        snprintf(what, sizeof(what), "cut at %zu", cut);
        feed_split(&got, in, n, &cut, 1);
        assert_same_events(&whole, &got, false, what);
        seen_dispose(&got);
    }
    feed_bytewise(&got, in, n);
    assert_same_events(&whole, &got, false, "bytewise");
    seen_dispose(&got);
    seen_dispose(&whole);
}

Test(dp_sse, crlf_split_between_cr_and_lf_does_not_end_an_extra_line)
{
    /* "data: a\r" | "\n\r\n": the LF completes the CRLF, it is not a blank line */
    seen_t w;
    dp_sse_t s;
    dp_sse_init(&s, 1024);
    seen_init(&w);
    cr_assert_eq(feed_str(&s, "data: a\r", &w), 0);
    cr_assert_eq(w.n, 0);
    cr_assert_eq(feed_str(&s, "\n", &w), 0);
    cr_assert_eq(w.n, 0, "the LF of a split CRLF ended an event");
    cr_assert_eq(feed_str(&s, "data: b\r\n\r", &w), 0);
    cr_assert_eq(w.n, 1);
    cr_assert(buf_is(&w.data[0], "a\nb"));
    cr_assert_eq(feed_str(&s, "\ndata: c\r\n\r\n", &w), 0);
    cr_assert_eq(w.n, 2);
    cr_assert(buf_is(&w.data[1], "c"));
    cr_assert_eq(dp_sse_pending(&s), 0);
    dp_sse_dispose(&s);
    seen_dispose(&w);
}

Test(dp_sse, lf_of_split_crlf_terminator_is_not_left_pending_nor_an_event)
{
    seen_t w;
    dp_sse_t s;
    dp_sse_init(&s, 1024);
    seen_init(&w);
    cr_assert_eq(feed_str(&s, "data: a\r\n\r", &w), 0);
    cr_assert_eq(w.n, 1);
    cr_assert_eq(feed_str(&s, "\n", &w), 0);
    cr_assert_eq(dp_sse_pending(&s), 0, "the LF of the terminator is pending");
    /* a stray CRLF blank line after it is no event either */
    cr_assert_eq(feed_str(&s, "\r", &w), 0);
    cr_assert_eq(feed_str(&s, "\n", &w), 0);
    cr_assert_eq(w.n, 1);
    cr_assert_eq(feed_str(&s, "data: b\r\n\r\n", &w), 0);
    cr_assert_eq(w.n, 2);
    cr_assert(buf_is(&w.raw[1], "data: b\r\n\r\n"), "[%.*s]", (int)w.raw[1].len, w.raw[1].base);
    cr_assert_eq(dp_sse_pending(&s), 0);
    dp_sse_dispose(&s);
    seen_dispose(&w);
}

Test(dp_sse, crlf_stream_split_at_every_pair_of_boundaries_yields_same_data)
{
    static const char in[] = "data: a\r\n\r\n\r\n: c\r\n\r\ndata: b\r\ndata: c\r\n\r\n";
    const size_t n = sizeof(in) - 1;
    seen_t whole;
    feed_split(&whole, in, n, NULL, 0);
    cr_assert_eq(whole.n, 3);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            size_t cuts[2] = {i, j};
            seen_t got;
            char what[40];
            snprintf(what, sizeof(what), "cuts at %zu,%zu", i, j);
            feed_split(&got, in, n, cuts, 2);
            assert_same_events(&whole, &got, false, what);
            seen_dispose(&got);
        }
    seen_dispose(&whole);
}

Test(dp_sse, multi_line_data_is_joined_with_newline)
{
    static const char in[] = "data: first\ndata:second\ndata\ndata:  third \n\n";
    seen_t w;
    feed_split(&w, in, sizeof(in) - 1, NULL, 0);
    cr_assert_eq(w.n, 1);
    /* one optional space after the colon is dropped; "data" alone is an empty line of data */
    cr_assert(buf_is(&w.data[0], "first\nsecond\n\n third "), "[%.*s]", (int)w.data[0].len,
              w.data[0].base);
    seen_dispose(&w);
}

Test(dp_sse, comment_and_keep_alive_events_carry_no_data)
{
    static const char in[] = ": ping\n\n:\n\nevent: ping\n\n";
    seen_t w;
    feed_split(&w, in, sizeof(in) - 1, NULL, 0);
    cr_assert_eq(w.n, 3);
    cr_assert(buf_is(&w.raw[0], ": ping\n\n"));
    cr_assert_not(w.has_data[0]);
    cr_assert_not(w.has_data[1]);
    cr_assert_not(w.has_data[2]);
    seen_dispose(&w);
}

Test(dp_sse, stray_blank_lines_between_events_are_not_events)
{
    static const char in[] = "\n\ndata: a\n\n\n\r\n\rdata: b\n\n";
    seen_t w;
    feed_split(&w, in, sizeof(in) - 1, NULL, 0);
    cr_assert_eq(w.n, 2);
    cr_assert(buf_is(&w.data[0], "a"));
    cr_assert(buf_is(&w.data[1], "b"));
    seen_dispose(&w);
    feed_bytewise(&w, in, sizeof(in) - 1);
    cr_assert_eq(w.n, 2);
    seen_dispose(&w);
}

Test(dp_sse, incomplete_event_stays_pending)
{
    seen_t w;
    dp_sse_t s;
    dp_sse_init(&s, 1024);
    seen_init(&w);
    cr_assert_eq(feed_str(&s, "data: x\n", &w), 0);
    cr_assert_eq(w.n, 0);
    cr_assert_eq(dp_sse_pending(&s), 8);
    cr_assert_eq(feed_str(&s, "\n", &w), 0);
    cr_assert_eq(w.n, 1);
    cr_assert(buf_is(&w.raw[0], "data: x\n\n"));
    cr_assert_eq(dp_sse_pending(&s), 0);
    dp_sse_dispose(&s);
    seen_dispose(&w);
}

Test(dp_sse, event_over_max_fails_with_toobig)
{
    seen_t w;
    dp_sse_t s;
    char big[100];
    memset(big, 'x', sizeof(big));
    dp_sse_init(&s, 64);
    seen_init(&w);
    cr_assert_eq(feed_str(&s, "data: ", &w), 0);
    cr_assert_eq(dp_sse_feed(&s, big, sizeof(big), on_event, &w), TG_ETOOBIG);
    cr_assert_eq(w.n, 0);
    cr_assert_leq(dp_sse_pending(&s), 64);
    dp_sse_dispose(&s);
    seen_dispose(&w);
}

Test(dp_sse, event_over_max_fed_bytewise_fails_with_toobig)
{
    seen_t w;
    dp_sse_t s;
    int rc = 0;
    dp_sse_init(&s, 16);
    seen_init(&w);
    const char in[] = "data: 0123456789abcdef\n\n";
    for (size_t i = 0; i < sizeof(in) - 1 && rc == 0; i++)
        rc = dp_sse_feed(&s, in + i, 1, on_event, &w);
    cr_assert_eq(rc, TG_ETOOBIG);
    cr_assert_eq(w.n, 0);
    dp_sse_dispose(&s);
    seen_dispose(&w);
}

Test(dp_sse, callback_error_stops_the_feed_and_is_returned)
{
    seen_t w;
    dp_sse_t s;
    dp_sse_init(&s, 1024);
    seen_init(&w);
    w.stop_after = 1;
    cr_assert_eq(feed_str(&s, "data: a\n\ndata: b\n\n", &w), 99);
    cr_assert_eq(w.n, 1);
    dp_sse_dispose(&s);
    seen_dispose(&w);
}

Test(dp_sse, data_without_space_after_colon)
{
    tg_buf_t scratch = TG_BUF_INIT(256);
    const char *d;
    size_t dl;
    const char ev[] = "data:{\"x\":1}\n\n";
    cr_assert(dp_sse_data(ev, sizeof(ev) - 1, &scratch, &d, &dl));
    cr_assert(tg_mem_eq(d, dl, "{\"x\":1}", 7));
    /* a single line is a slice of the event, not a copy */
    cr_assert(d >= ev && d < ev + sizeof(ev));
    tg_buf_dispose(&scratch);
}

Test(dp_sse, data_alone_is_an_empty_value)
{
    tg_buf_t scratch = TG_BUF_INIT(256);
    const char *d = NULL;
    size_t dl = 99;
    cr_assert(dp_sse_data("data\n\n", 6, &scratch, &d, &dl));
    cr_assert_eq(dl, 0);
    cr_assert(dp_sse_data("data:\n\n", 7, &scratch, &d, &dl));
    cr_assert_eq(dl, 0);
    cr_assert(dp_sse_data("data: \n\n", 8, &scratch, &d, &dl));
    cr_assert_eq(dl, 0);
    tg_buf_dispose(&scratch);
}

Test(dp_sse, fields_that_only_start_with_data_are_not_data)
{
    tg_buf_t scratch = TG_BUF_INIT(256);
    const char *d;
    size_t dl;
    cr_assert_not(dp_sse_data("database: x\n\n", 13, &scratch, &d, &dl));
    cr_assert_not(dp_sse_data("dat: x\n\n", 8, &scratch, &d, &dl));
    cr_assert_not(dp_sse_data(": data: x\n\n", 11, &scratch, &d, &dl));
    cr_assert_not(dp_sse_data(" data: x\n\n", 10, &scratch, &d, &dl));
    cr_assert(dp_sse_data("id: 1\ndata: y\n\n", 15, &scratch, &d, &dl));
    cr_assert(tg_mem_eq(d, dl, "y", 1));
    tg_buf_dispose(&scratch);
}

Test(dp_sse, data_without_trailing_newline_is_read_to_the_end)
{
    tg_buf_t scratch = TG_BUF_INIT(256);
    const char *d;
    size_t dl;
    cr_assert(dp_sse_data("data: abc", 9, &scratch, &d, &dl));
    cr_assert(tg_mem_eq(d, dl, "abc", 3));
    tg_buf_dispose(&scratch);
}

Test(dp_sse, multi_line_data_over_scratch_max_is_not_read)
{
    tg_buf_t scratch = TG_BUF_INIT(4);
    const char *d;
    size_t dl;
    cr_assert_not(dp_sse_data("data: abc\ndata: def\n\n", 21, &scratch, &d, &dl));
    tg_buf_dispose(&scratch);
}
