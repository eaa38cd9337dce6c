/* test_cp_http.c: the control plane's HTTP server (http.c) without a database: the framing checks
 * of a request's head (Host, Content-Length, Transfer-Encoding, the version), the body limit held
 * against the declared length before any byte is read, %XX decoding of the path (never %00), and
 * the answers counted by status class. Requests are raw bytes over a socket to cp_http_start on
 * 127.0.0.1 port 0; the database URL points at a closed port. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cp.h"
#include "cp_http.h"

static cp_opts_t test_opts;
static int port;

static void start(void)
{
    memset(&test_opts, 0, sizeof(test_opts));
    snprintf(test_opts.listen_host, sizeof(test_opts.listen_host), "127.0.0.1");
    test_opts.listen_port = 0;
    test_opts.database_url = "postgresql://127.0.0.1:1/none?connect_timeout=2";
    test_opts.threads = 2;
    test_opts.max_connections = 16;
    test_opts.max_connections_per_ip = 16;
    test_opts.header_timeout_s = 10;
    test_opts.jwt_ttl_s = 3600;
    cp_opts = &test_opts;
    static const cp_http_api_t api = {cp_api_precheck, cp_api_dispatch}; /* as main.c wires it */
    cr_assert_eq(cp_http_start(&test_opts, &api, &port), 0);
    cr_assert_gt(port, 0);
}

static void stop(void)
{
    cp_http_stop();
}

TestSuite(cp_http, .init = start, .fini = stop);

static char answer[1u << 16];

/* Sends n bytes and reads the answer until the server closes (every answer here closes);
 * returns the status. */
static int exchange(const char *req, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* refused before the body: the answer is what counts */
        off += (size_t)w;
    }
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 20000), 1, "no answer within 20 s: %.*s", (int)len, answer);
        ssize_t r = recv(fd, answer + len, sizeof(answer) - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        cr_assert_lt(len, sizeof(answer) - 1);
    }
    answer[len] = '\0';
    close(fd);
    int status = 0;
    cr_assert_eq(sscanf(answer, "HTTP/1.%*d %d", &status), 1, "%s", answer);
    return status;
}

static int send_text(const char *req)
{
    return exchange(req, strlen(req));
}

/* The answer's body is an error with this message. */
static void expect_message(const char *message)
{
    const char *body = strstr(answer, "\r\n\r\n");
    cr_assert_not_null(body, "%s", answer);
    json_t *v = json_loads(body + 4, 0, NULL);
    cr_assert_not_null(v, "%s", answer);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "error"), "message")),
                     message);
    json_decref(v);
}

Test(cp_http, a_well_formed_request_is_served)
{
    cr_assert_eq(send_text("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    cr_assert_not_null(strstr(answer, "{\"status\":\"ok\"}"), "%s", answer);
    cr_assert_not_null(strstr(answer, "X-Content-Type-Options: nosniff"), "%s", answer);
    /* HTTP/1.0 needs no Host */
    cr_assert_eq(send_text("GET /healthz HTTP/1.0\r\n\r\n"), 200);
}

Test(cp_http, an_http_1_1_request_needs_exactly_one_host)
{
    cr_assert_eq(send_text("GET /healthz HTTP/1.1\r\n\r\n"), 400);
    expect_message("malformed request: an HTTP/1.1 request needs a Host header");
    cr_assert_eq(send_text("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    expect_message("malformed request: more than one Host header");
}

Test(cp_http, the_bodys_length_must_be_unambiguous)
{
    cr_assert_eq(send_text("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                           "Content-Length: 2\r\n\r\n{}"),
                 400);
    expect_message("malformed request: more than one Content-Length header");
    cr_assert_eq(send_text("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n{}"),
                 400);
    expect_message("malformed request: both Content-Length and Transfer-Encoding: the body's "
                   "length is ambiguous");
    cr_assert_eq(send_text("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                           "Transfer-Encoding: gzip\r\n\r\n"),
                 400);
    expect_message("malformed request: unsupported Transfer-Encoding; only chunked is known");
    cr_assert_eq(send_text("POST /api/v1/auth/login HTTP/1.0\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                 400);
    expect_message("malformed request: Transfer-Encoding in an HTTP/1.0 request");
}

Test(cp_http, a_chunked_body_is_411)
{
    cr_assert_eq(send_text("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
                 411);
    expect_message("send the body with Content-Length, not Transfer-Encoding: chunked");
}

Test(cp_http, a_header_name_is_a_token_without_blanks)
{
    cr_assert_eq(send_text("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A(b: 1\r\n\r\n"), 400);
    expect_message("malformed request: a header name holds a character other than letters, "
                   "digits and !#$%&'*+-.^_`|~");
}

/* Before authentication a body is at most 64 KiB, checked against Content-Length before any
 * of it is read. */
Test(cp_http, an_anonymous_body_is_at_most_65536_bytes)
{
    static char req[70000];
    int n =
        snprintf(req, sizeof(req),
                 "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n");
    cr_assert_eq(exchange(req, (size_t)n), 413);
    expect_message("request body of 65537 bytes is larger than the 65536 bytes this endpoint takes "
                   "before authentication");
    /* at the limit the body is read and the login handler answers: no database here */
    n = snprintf(req, sizeof(req),
                 "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n");
    const char *login = "{\"email\":\"a@example.com\",\"password\":\"p\"}";
    memset(req + n, ' ', 65536);
    memcpy(req + n, login, strlen(login));
    cr_assert_eq(exchange(req, (size_t)n + 65536), 503, "%s", answer);
    expect_message("the database is unreachable");
}

Test(cp_http, the_path_is_percent_decoded_but_never_to_a_nul)
{
    cr_assert_eq(send_text("GET /health%7a HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    cr_assert_eq(send_text("GET /api/v1/%6eothing HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    expect_message("no such endpoint: /api/v1/nothing");
    cr_assert_eq(send_text("GET /healthz%00 HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    expect_message("no such page or endpoint: /healthz%00");
    cr_assert_eq(send_text("GET /api/v1/me%00 HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    expect_message("no such endpoint: /api/v1/me%00");
    cr_assert_eq(send_text("GET /api/v1/me%zz HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    expect_message("no such endpoint: /api/v1/me%zz");
}

Test(cp_http, unknown_paths_and_methods)
{
    cr_assert_eq(send_text("GET /api/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    expect_message("no such endpoint: /api/v1/nothing");
    cr_assert_eq(send_text("DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    expect_message("DELETE is not allowed on /healthz");
}

Test(cp_http, answers_are_counted_by_status_class)
{
    unsigned long ok = cp_http_count(2), bad = cp_http_count(4);
    cr_assert_eq(send_text("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    cr_assert_eq(send_text("GET /healthz HTTP/1.1\r\n\r\n"), 400);
    cr_assert_eq(send_text("GET /nope/api HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    cr_assert_eq(cp_http_count(2), ok + 1);
    cr_assert_eq(cp_http_count(4), bad + 2);
}
