/* test_dp_conn.c: the client connection on a real loop: a test handler answers through the
 * writer, a client on the same loop sends bytes and reads what comes back. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"

typedef struct world {
    uv_loop_t *loop; /* the worker's */
    dp_opts_t opts;
    dp_worker_t *w;
    uv_tcp_t client;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_timer_t guard;
    const char *send;
    char got[96 * 1024];
    size_t ngot;
    bool eof;
    size_t want; /* stop once this many bytes arrived (0: at EOF) */
    /* the handler's view */
    int requests;
    int inflight, max_inflight;
    int gone;
    bool defer_end; /* end each request from a timer instead of at once */
    uv_timer_t later;
    dp_conn_t *pending_conn;
    dp_conn_watch_t watch;
    int mode; /* what the handler answers with */
    /* mode 6: what the client could read, and the connection held, right after the writes */
    ssize_t peeked;
    size_t held;
    int backend_timeout; /* how long the loop would wait for I/O now, with bytes held */
    size_t cork_cap;     /* mode 7: the worker's cork buffer's size right after the writes */
} world_t;

static world_t W;

static void answer(dp_conn_t *c)
{
    if (W.mode == 0) {
        dp_head_t h = {200, "application/json", "x-a: b\r\n", 8};
        dp_conn_respond(c, &h, "{}", 2);
    } else if (W.mode == 1) {
        dp_head_t h = {200, "text/event-stream", NULL, 0};
        dp_conn_start_chunked(c, &h);
        dp_conn_write_chunk(c, "abcdefghijklmnopqrstuvwxyz", 26);
        dp_conn_write_chunk(c, NULL, 0);
    } else if (W.mode == 4) { /* the head with the first chunk, a chunk, the last with the end */
        dp_head_t h = {200, "text/event-stream", NULL, 0};
        dp_conn_start_chunked_with(c, &h, "data: 1\n\n", 9);
        dp_conn_write_chunk(c, "data: 2\n\n", 9);
        dp_conn_end_chunked(c, "data: [DONE]\n\n", 14);
    } else if (W.mode == 5) { /* a head alone, then an end with nothing left to send */
        dp_head_t h = {200, "text/event-stream", NULL, 0};
        dp_conn_start_chunked_with(c, &h, NULL, 0);
        dp_conn_end_chunked(c, NULL, 0);
    } else if (W.mode == 6) { /* the same three writes, corked: they leave at the loop's check */
        dp_head_t h = {200, "text/event-stream", NULL, 0};
        dp_conn_cork(c);
        dp_conn_start_chunked_with(c, &h, "data: 1\n\n", 9);
        dp_conn_write_chunk(c, "data: 2\n\n", 9);
        dp_conn_end_chunked(c, "data: [DONE]\n\n", 14);
        char peek[16];
        uv_os_fd_t fd;
        cr_assert_eq(uv_fileno((uv_handle_t *)&W.client, &fd), 0);
        W.peeked = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
        if (W.peeked < 0)
            W.peeked = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        W.held = dp_conn_write_queue(c);
        W.backend_timeout = uv_backend_timeout(W.loop);
    } else if (W.mode == 7) { /* corked writes that add up to more than the cork buffer holds */
        static char big[40000];
        for (size_t i = 0; i < sizeof(big); i++)
            big[i] = (char)('a' + i % 26);
        dp_head_t h = {200, "text/event-stream", NULL, 0};
        dp_conn_cork(c);
        dp_conn_start_chunked_with(c, &h, big, sizeof(big));
        big[0] = 'B';
        dp_conn_write_chunk(c, big, sizeof(big));
        dp_conn_end_chunked(c, "x", 1);
        W.cork_cap = W.w->cork_buf.cap;
    } else {
        tg_err_t err;
        tg_err_set(&err, TG_ENOTFOUND, 404, "no such thing");
        tg_err_code(&err, "model_not_found");
        dp_conn_respond_error(c, 0, &err, NULL, 0);
    }
}

static void on_later(uv_timer_t *t)
{
    (void)t;
    dp_conn_t *c = W.pending_conn;
    W.pending_conn = NULL;
    answer(c);
    W.inflight--;
    dp_conn_end(c);
}

static void on_watch(dp_conn_watch_t *watch, int ev)
{
    (void)watch;
    if (ev == DP_CONN_EV_GONE) {
        W.gone++;
        W.inflight--;
    }
}

static bool on_head(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *head)
{
    (void)w;
    (void)c;
    (void)head;
    return false;
}

static void on_request(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg)
{
    (void)w;
    dp_http_msg_dispose(msg);
    W.requests++;
    W.inflight++;
    if (W.inflight > W.max_inflight)
        W.max_inflight = W.inflight;
    if (W.mode == 3) { /* never answers: waits for the client to leave */
        W.watch.cb = on_watch;
        dp_conn_watch(c, &W.watch);
        return;
    }
    if (W.defer_end) {
        W.pending_conn = c;
        uv_timer_start(&W.later, on_later, 5, 0);
        return;
    }
    answer(c);
    W.inflight--;
    dp_conn_end(c);
}

static const dp_conn_handler_t handler = {on_head, on_request};

static void on_listen(uv_stream_t *s, int status)
{
    cr_assert_eq(status, 0);
    dp_conn_accept(W.w, s);
}

static void c_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    b->base = W.got + W.ngot;
    b->len = sizeof(W.got) - 1 - W.ngot;
}

static void stop_all(void)
{
    uv_stop(W.loop);
}

static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0) {
        W.eof = true;
        uv_read_stop(s);
        if (W.want == 0 || W.mode == 3)
            stop_all();
        return;
    }
    W.ngot += (size_t)n;
    W.got[W.ngot] = '\0';
    if (W.want && W.ngot >= W.want)
        stop_all();
}

static void c_written(uv_write_t *wr, int status)
{
    (void)wr;
    cr_assert_eq(status, 0);
    if (W.mode == 3) /* the client leaves before any answer */
        uv_close((uv_handle_t *)&W.client, NULL);
}

static void c_connected(uv_connect_t *req, int status)
{
    (void)req;
    cr_assert_eq(status, 0);
    uv_read_start((uv_stream_t *)&W.client, c_alloc, c_read);
    uv_buf_t b = uv_buf_init((char *)W.send, (unsigned)strlen(W.send));
    uv_write(&W.wreq, (uv_stream_t *)&W.client, &b, 1, c_written);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    stop_all();
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Sends `send` to a fresh connection and runs the loop until `want` bytes came back (or EOF when
 * want is 0, or 3 s passed). */
static void run(const char *send, size_t want)
{
    static dp_worker_t worker;
    memset(&W, 0, sizeof(W));
    memset(&worker, 0, sizeof(worker));
    W.w = &worker;
    dp_http_limits_t lim = DP_HTTP_LIMITS_DEFAULT;
    W.opts.limits = lim;
    W.opts.header_timeout_ms = W.opts.body_timeout_ms = W.opts.idle_timeout_ms = 2000;
    worker.opts = &W.opts;
    worker.handler = &handler;
    W.send = send;
    W.want = want;
}

static void go(void)
{
    dp_worker_t *w = W.w;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_loop_init(&w->loop);
    dp_conn_worker_init(w);
    uv_tcp_init(&w->loop, &w->listener);
    cr_assert_eq(uv_tcp_bind(&w->listener, (const struct sockaddr *)&addr, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&w->listener, 16, on_listen), 0);
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&w->listener, (struct sockaddr *)&bound, &blen);
    uv_timer_init(&w->loop, &W.guard);
    uv_timer_init(&w->loop, &W.later);
    uv_timer_start(&W.guard, on_guard, 3000, 0);
    uv_tcp_init(&w->loop, &W.client);
    uv_tcp_connect(&W.creq, &W.client, (const struct sockaddr *)&bound, c_connected);
    W.loop = &w->loop;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* let what the connection still does (closing, deferred parsing) finish, then close all */
    uv_run(&w->loop, UV_RUN_NOWAIT);
    dp_conn_close_idle(w, true);
    dp_conn_worker_close(w);
    uv_walk(&w->loop, close_any, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&w->loop), 0);
}

Test(dp_conn, respond_writes_status_line_framing_and_extra_lines)
{
    static const char want[] = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                               "content-length: 2\r\nx-a: b\r\n\r\n{}";
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", sizeof(want) - 1);
    go();
    cr_assert_str_eq(W.got, want);
}

Test(dp_conn, chunks_are_framed_in_hex_and_ended_with_a_zero_chunk)
{
    static const char want[] = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                               "transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
                               "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", sizeof(want) - 1);
    W.mode = 1;
    go();
    cr_assert_str_eq(W.got, want);
}

Test(dp_conn, a_head_may_carry_the_first_chunk_and_the_last_chunk_the_end)
{
    static const char want[] = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                               "transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
                               "9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n"
                               "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", sizeof(want) - 1);
    W.mode = 4;
    go();
    cr_assert_str_eq(W.got, want);
}

Test(dp_conn, a_stream_with_no_chunks_is_a_head_and_the_zero_chunk)
{
    static const char want[] = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                               "transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
                               "0\r\n\r\n";
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", sizeof(want) - 1);
    W.mode = 5;
    go();
    cr_assert_str_eq(W.got, want);
}

Test(dp_conn, error_body_takes_openai_shape_from_the_one_type_table)
{
    static const char body[] = "{\"error\":{\"message\":\"no such thing\",\"type\":"
                               "\"invalid_request_error\",\"param\":null,\"code\":"
                               "\"model_not_found\"}}";
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", 0);
    W.mode = 2;
    W.want = 80 + sizeof(body) - 1; /* head plus body: stop when the body is in */
    go();
    cr_assert(strstr(W.got, "HTTP/1.1 404 Not Found\r\n") == W.got, "%s", W.got);
    cr_assert(strstr(W.got, body) != NULL, "%s", W.got);
}

Test(dp_conn, unparseable_input_gets_400_and_connection_close)
{
    run("BLAH\x01 / HTTP/1.1\r\n\r\n", 0);
    go();
    cr_assert(strstr(W.got, "HTTP/1.1 400 Bad Request\r\n") == W.got, "%s", W.got);
    cr_assert(strstr(W.got, "connection: close\r\n") != NULL, "%s", W.got);
    cr_assert(strstr(W.got, "\"type\":\"invalid_request_error\"") != NULL, "%s", W.got);
    cr_assert(W.eof);
    cr_assert_eq(W.requests, 0);
}

Test(dp_conn, pipelined_requests_are_answered_in_order_one_at_a_time)
{
    static const char one[] = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                              "content-length: 2\r\nx-a: b\r\n\r\n{}";
    run("GET /1 HTTP/1.1\r\nhost: a\r\n\r\nGET /2 HTTP/1.1\r\nhost: a\r\n\r\n"
        "GET /3 HTTP/1.1\r\nhost: a\r\n\r\n",
        3 * (sizeof(one) - 1));
    W.defer_end = true; /* each ends later, from the loop */
    go();
    cr_assert_eq(W.requests, 3);
    cr_assert_eq(W.max_inflight, 1);
    cr_assert_eq(W.ngot, 3 * (sizeof(one) - 1));
}

Test(dp_conn, answers_ended_at_once_let_the_next_pipelined_request_in)
{
    static const char one[] = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                              "content-length: 2\r\nx-a: b\r\n\r\n{}";
    run("GET /1 HTTP/1.1\r\nhost: a\r\n\r\nGET /2 HTTP/1.1\r\nhost: a\r\n\r\n",
        2 * (sizeof(one) - 1));
    go();
    cr_assert_eq(W.requests, 2);
    cr_assert_eq(W.max_inflight, 1);
}

Test(dp_conn, a_client_that_leaves_reaches_the_request_watch_once)
{
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", 0);
    W.mode = 3;
    go();
    cr_assert_eq(W.requests, 1);
    cr_assert_eq(W.gone, 1);
}

static const char corked_want[] = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                  "transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
                                  "9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n"
                                  "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";

Test(dp_conn, corked_writes_wait_for_the_loop_then_leave_together_in_order)
{
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", sizeof(corked_want) - 1);
    W.mode = 6;
    go();
    cr_assert_eq(W.peeked, 0, "the client could read %zd bytes before the loop's check",
                 W.peeked);
    cr_assert_eq(W.held, sizeof(corked_want) - 1, "held %zu bytes", W.held);
    cr_assert_str_eq(W.got, corked_want);
}

Test(dp_conn, a_connection_that_closes_after_a_corked_answer_sends_it_first)
{
    run("GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n", 0);
    W.mode = 6;
    go();
    static const char want[] = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                               "transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
                               "connection: close\r\n\r\n"
                               "9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n"
                               "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";
    cr_assert(W.eof);
    cr_assert_str_eq(W.got, want);
}

Test(dp_conn, writes_corked_in_a_timer_leave_before_the_loop_waits_for_io)
{
    /* the answer comes from a timer callback (as curl's timeouts drive a transfer): held bytes
     * must not wait for whatever I/O wakes the loop next (a stream's next event, another client) */
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", sizeof(corked_want) - 1);
    W.mode = 6;
    W.defer_end = true;
    go();
    cr_assert_eq(W.peeked, 0);
    cr_assert_eq(W.backend_timeout, 0, "with bytes held the loop would wait %d ms for I/O",
                 W.backend_timeout);
    cr_assert_str_eq(W.got, corked_want);
}

Test(dp_conn, corked_writes_beyond_the_cork_buffer_leave_in_order_and_the_buffer_stays_bounded)
{
    /* thousands of streams that fell behind each relay a large read in one iteration: what
     * the worker holds for them must stay bounded, and each answer's bytes in order */
    static char want[90000];
    static const char head[] = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                               "transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n";
    size_t n = 0;
    memcpy(want, head, sizeof(head) - 1);
    n += sizeof(head) - 1;
    for (int k = 0; k < 2; k++) {
        memcpy(want + n, "9c40\r\n", 6);
        n += 6;
        for (size_t i = 0; i < 40000; i++)
            want[n + i] = (char)('a' + i % 26);
        if (k == 1)
            want[n] = 'B';
        n += 40000;
        memcpy(want + n, "\r\n", 2);
        n += 2;
    }
    memcpy(want + n, "1\r\nx\r\n0\r\n\r\n", 11);
    n += 11;
    want[n] = '\0';
    run("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", n);
    W.mode = 7;
    go();
    cr_assert_leq(W.cork_cap, DP_CORK_MAX, "the cork buffer grew to %zu bytes", W.cork_cap);
    cr_assert_eq(W.ngot, n, "got %zu of %zu bytes", W.ngot, n);
    cr_assert(memcmp(W.got, want, n) == 0, "the bytes arrived out of order");
}
