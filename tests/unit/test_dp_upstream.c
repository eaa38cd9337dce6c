/* test_dp_upstream.c: exchanges against a small HTTP server on the same loop: what reaches
 * on_head, on_data and on_done, the buffered answer and its limit, retry-after, the first-byte
 * deadline and the reuse of a pooled exchange. */
#include <criterion/criterion.h>
#include <string.h>

#include "upstream.h"

typedef struct world {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_tcp_t peer;
    bool peer_open;
    int port;
    const char *answer; /* what the server writes once a request's head is in; NULL: nothing */
    char req[4096];
    size_t nreq;
    uv_write_t wr;
    uv_timer_t guard;
    dp_upstream_t *u;
    dp_exchange_t *x;
    bool stream;
    char data[4096];
    size_t ndata;
    int heads, dones, result;
    int body_held; /* on_data saw the request's body still allocated: 1, freed: 0, not yet: -1 */
} world_t;

static world_t W;

static void s_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    b->base = W.req + W.nreq;
    b->len = sizeof(W.req) - 1 - W.nreq;
}

static void s_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0) {
        uv_read_stop(s);
        return;
    }
    size_t before = W.nreq;
    W.nreq += (size_t)n;
    W.req[W.nreq] = '\0';
    /* answer once per request: when its head's end arrives (bodies here are short) */
    if (W.answer && strstr(W.req + (before > 3 ? before - 3 : 0), "\r\n\r\n")) {
        uv_buf_t a = uv_buf_init((char *)W.answer, (unsigned)strlen(W.answer));
        uv_write(&W.wr, s, &a, 1, NULL);
    }
}

static void on_listen(uv_stream_t *s, int status)
{
    cr_assert_eq(status, 0);
    uv_tcp_init(&W.loop, &W.peer);
    cr_assert_eq(uv_accept(s, (uv_stream_t *)&W.peer), 0);
    W.peer_open = true;
    uv_read_start((uv_stream_t *)&W.peer, s_alloc, s_read);
}

static bool on_head(void *ud, dp_exchange_t *x)
{
    (void)ud;
    cr_assert_eq(x, W.x);
    W.heads++;
    return W.stream;
}

static int on_data(void *ud, const char *p, size_t n)
{
    (void)ud;
    cr_assert_leq(W.ndata + n, sizeof(W.data));
    W.body_held = dp_exchange_body(W.x)->base != NULL;
    memcpy(W.data + W.ndata, p, n);
    W.ndata += n;
    return 0;
}

static void on_done(void *ud, int result)
{
    (void)ud;
    W.dones++;
    W.result = result;
    uv_stop(&W.loop);
}

static const dp_exchange_cbs_t cbs = {on_head, on_data, on_done};

static void on_guard(uv_timer_t *t)
{
    (void)t;
    uv_stop(&W.loop);
}

static void setup(size_t max_response)
{
    memset(&W, 0, sizeof(W));
    cr_assert_eq(dp_upstream_global_init(), 0);
    uv_loop_init(&W.loop);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(&W.loop, &W.listener);
    cr_assert_eq(uv_tcp_bind(&W.listener, (const struct sockaddr *)&addr, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&W.listener, 16, on_listen), 0);
    struct sockaddr_in bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&W.listener, (struct sockaddr *)&bound, &blen);
    W.port = ntohs(bound.sin_port);
    uv_timer_init(&W.loop, &W.guard);
    W.u = dp_upstream_create(&W.loop, 1u << 20, max_response);
    cr_assert_not_null(W.u);
}

/* Starts an exchange on a fresh or pooled exchange and runs the loop until it ends (5 s at
 * most). */
static void exchange(uint32_t first_byte_ms)
{
    W.x = dp_exchange_get(W.u);
    cr_assert_not_null(W.x);
    tg_buf_t *url = dp_exchange_url(W.x);
    char u[64];
    int n = snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/chat/completions", W.port);
    cr_assert_eq(tg_buf_append(url, u, (size_t)n), 0);
    cr_assert_eq(tg_buf_append(dp_exchange_body(W.x), "{\"a\":1}", 7), 0);
    cr_assert_eq(dp_exchange_add_header(W.x, "content-type: application/json"), 0);
    dp_exchange_limits_t lim = {"t", 1, "mock", 2000, 5000, first_byte_ms, 0};
    tg_err_t err;
    cr_assert_eq(dp_exchange_start(W.x, &lim, &cbs, NULL, &err), 0);
    uv_timer_start(&W.guard, on_guard, 5000, 0);
    uv_run(&W.loop, UV_RUN_DEFAULT);
    uv_timer_stop(&W.guard);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void teardown_world(void)
{
    dp_exchange_put(W.x);
    dp_upstream_destroy(W.u);
    uv_run(&W.loop, UV_RUN_NOWAIT);
    uv_walk(&W.loop, close_any, NULL);
    uv_run(&W.loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&W.loop), 0);
    dp_upstream_global_cleanup();
}

Test(dp_upstream, buffered_answer_reaches_on_done_with_status_type_and_retry_after)
{
    setup(1u << 20);
    W.answer = "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
               "retry-after: 7\r\ncontent-length: 11\r\n\r\n{\"e\":\"slow\"}";
    exchange(0);
    cr_assert_eq(W.dones, 1);
    cr_assert_eq(W.result, DP_X_OK);
    cr_assert_eq(W.heads, 1);
    cr_assert_eq(dp_exchange_status(W.x), 429);
    cr_assert_str_eq(dp_exchange_ctype(W.x), "application/json");
    cr_assert_str_eq(dp_exchange_retry_after(W.x), "7");
    size_t len;
    const char *a = dp_exchange_answer(W.x, &len);
    cr_assert_eq(len, 11);
    cr_assert_eq(memcmp(a, "{\"e\":\"slow\"}", 11), 0);
    cr_assert_eq(W.ndata, 0);
    /* the request went out as built: method, path, header and body */
    cr_assert(strstr(W.req, "POST /v1/chat/completions HTTP/1.1\r\n") == W.req, "%s", W.req);
    cr_assert(strstr(W.req, "content-type: application/json\r\n") != NULL, "%s", W.req);
    cr_assert(strstr(W.req, "\r\n\r\n{\"a\":1}") != NULL, "%s", W.req);
    teardown_world();
}

Test(dp_upstream, streamed_answer_goes_to_on_data_and_is_not_buffered)
{
    setup(1u << 20);
    W.stream = true;
    W.answer = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 14\r\n\r\n"
               "data: hi\n\ndata";
    exchange(0);
    cr_assert_eq(W.result, DP_X_OK);
    cr_assert_eq(W.ndata, 14);
    cr_assert_eq(memcmp(W.data, "data: hi\n\ndata", 14), 0);
    /* sent and answered: a stream does not hold its request body for its whole life */
    cr_assert_eq(W.body_held, 0, "the request body is still held while the answer streams");
    size_t len;
    dp_exchange_answer(W.x, &len);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(dp_exchange_retry_after(W.x), "");
    teardown_world();
}

Test(dp_upstream, a_buffered_answer_over_the_limit_ends_too_large)
{
    setup(4);
    W.answer = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789";
    exchange(0);
    cr_assert_eq(W.dones, 1);
    cr_assert_eq(W.result, DP_X_TOO_LARGE);
    teardown_world();
}

Test(dp_upstream, silence_past_the_first_byte_deadline_ends_with_timeout)
{
    setup(1u << 20);
    W.answer = NULL; /* the server reads and never answers */
    uint64_t t0 = uv_hrtime();
    exchange(150);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    cr_assert_eq(W.dones, 1);
    cr_assert_eq(W.result, DP_X_TIMEOUT);
    cr_assert_eq(W.heads, 0);
    cr_assert_geq(ms, 140);
    cr_assert_lt(ms, 2000, "took %llu ms", (unsigned long long)ms);
    teardown_world();
}

Test(dp_upstream, a_put_back_exchange_is_reused_and_starts_clean)
{
    setup(1u << 20);
    W.answer = "HTTP/1.1 503 Busy\r\nretry-after: 3\r\ncontent-length: 1\r\n\r\nx";
    exchange(0);
    cr_assert_eq(dp_exchange_status(W.x), 503);
    dp_exchange_t *first = W.x;
    dp_exchange_put(W.x);
    W.answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    W.nreq = 0;
    W.dones = 0;
    exchange(0);
    cr_assert_eq(W.x, first, "the pooled exchange comes back");
    cr_assert_eq(W.dones, 1);
    cr_assert_eq(dp_exchange_status(W.x), 200);
    cr_assert_str_eq(dp_exchange_retry_after(W.x), "", "nothing left from the last answer");
    size_t len;
    const char *a = dp_exchange_answer(W.x, &len);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(a, "ok", 2), 0);
    /* one header line, not the first request's too */
    const char *h = strstr(W.req, "content-type: application/json\r\n");
    cr_assert_not_null(h);
    cr_assert_null(strstr(h + 1, "content-type: application/json\r\n"));
    teardown_world();
}
