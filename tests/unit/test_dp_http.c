/* test_dp_http.c: the HTTP/1.1 request front: parsing, limits and pipelining. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http.h"

static const dp_http_limits_t DEFAULT_LIMITS = DP_HTTP_LIMITS_DEFAULT;

/* Feeds n bytes, going on past the end of the headers (DP_HTTP_HEAD) as a connection does when
 * it lets the body in; returns the last result, *used the bytes used in all. */
static int feed_n(dp_http_parser_t *hp, const char *s, size_t n, size_t *used)
{
    size_t at = 0, u = 0;
    int rc;
    while ((rc = dp_http_feed(hp, s + at, n - at, &u)) == DP_HTTP_HEAD)
        at += u;
    *used = at + u;
    return rc;
}

/* Feeds the whole string at once. */
static int feed_all(dp_http_parser_t *hp, const char *s, size_t *used)
{
    return feed_n(hp, s, strlen(s), used);
}

/* Feeds one byte at a time until the message completes or fails. */
static int feed_bytes(dp_http_parser_t *hp, const char *s, size_t n, size_t *consumed)
{
    for (size_t i = 0; i < n; i++) {
        size_t used = 0;
        int rc = dp_http_feed(hp, s + i, 1, &used);
        if (rc == DP_HTTP_HEAD) {
            cr_assert_eq(used, 1, "the head ends with this byte");
            continue;
        }
        if (rc != DP_HTTP_MORE) {
            *consumed = i + used;
            return rc;
        }
        cr_assert_eq(used, 1);
    }
    *consumed = n;
    return DP_HTTP_MORE;
}

static bool buf_is(const tg_buf_t *b, const char *s)
{
    return tg_mem_eq(b->base, b->len, s, strlen(s));
}

Test(dp_http, get_parses_method_url_and_path_without_query)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "GET /v1/models?limit=5&x=y HTTP/1.1\r\nHost: gw\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, req, &used), DP_HTTP_DONE);
    cr_assert_eq(used, sizeof(req) - 1);
    cr_assert_eq(hp.msg.method, HTTP_GET);
    cr_assert(buf_is(&hp.msg.url, "/v1/models?limit=5&x=y"));
    const char *path;
    size_t plen;
    dp_http_path(&hp.msg, &path, &plen);
    cr_assert(tg_mem_eq(path, plen, "/v1/models", 10));
    cr_assert(hp.msg.keep_alive);
    cr_assert_not(hp.msg.expect_continue);
    cr_assert_eq(hp.msg.body.len, 0);
    dp_http_dispose(&hp);
}

Test(dp_http, path_without_query_is_whole_url)
{
    dp_http_msg_t m;
    memset(&m, 0, sizeof(m));
    tg_buf_init(&m.url, 64);
    const char *path;
    size_t plen;
    dp_http_path(&m, &path, &plen);
    cr_assert_eq(plen, 0);
    cr_assert_not_null(path);
    cr_assert_eq(tg_buf_append(&m.url, "/health", 7), 0);
    dp_http_path(&m, &path, &plen);
    cr_assert(tg_mem_eq(path, plen, "/health", 7));
    dp_http_msg_dispose(&m);
}

Test(dp_http, auth_headers_are_captured_case_insensitively)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "POST /v1/chat/completions HTTP/1.1\r\n"
                       "Host: gw\r\n"
                       "AUTHORIZATION: Bearer sk-abc\r\n"
                       "X-Api-Key: key-2\r\n"
                       "x-REQUEST-id: req-77\r\n"
                       "X-Other: ignored\r\n"
                       "Content-Length: 0\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, req, &used), DP_HTTP_DONE);
    cr_assert_eq(hp.msg.method, HTTP_POST);
    cr_assert(buf_is(&hp.msg.authorization, "Bearer sk-abc"));
    cr_assert(buf_is(&hp.msg.api_key, "key-2"));
    cr_assert(buf_is(&hp.msg.request_id, "req-77"));
    dp_http_dispose(&hp);
}

Test(dp_http, long_unknown_header_name_is_skipped_without_capture)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "GET / HTTP/1.1\r\nHost: gw\r\n"
                       "X-A-Very-Long-Header-Name-That-Is-Over-32-Bytes: v\r\n"
                       "Authorization: Bearer k\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, req, &used), DP_HTTP_DONE);
    cr_assert(buf_is(&hp.msg.authorization, "Bearer k"));
    dp_http_dispose(&hp);
}

Test(dp_http, headers_split_byte_by_byte_parse_the_same)
{
    dp_http_parser_t hp;
    size_t consumed = 0;
    const char req[] = "POST /v1/embeddings?q=1 HTTP/1.1\r\n"
                       "Host: gw\r\n"
                       "Authorization: Bearer sk-split\r\n"
                       "x-api-key: kk\r\n"
                       "X-Request-Id: abc-def\r\n"
                       "Content-Length: 11\r\n\r\n"
                       "{\"a\":\"bcd\"}";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_bytes(&hp, req, sizeof(req) - 1, &consumed), DP_HTTP_DONE);
    cr_assert_eq(consumed, sizeof(req) - 1);
    cr_assert_eq(hp.msg.method, HTTP_POST);
    cr_assert(buf_is(&hp.msg.url, "/v1/embeddings?q=1"));
    cr_assert(buf_is(&hp.msg.authorization, "Bearer sk-split"));
    cr_assert(buf_is(&hp.msg.api_key, "kk"));
    cr_assert(buf_is(&hp.msg.request_id, "abc-def"));
    cr_assert(buf_is(&hp.msg.body, "{\"a\":\"bcd\"}"));
    dp_http_dispose(&hp);
}

Test(dp_http, post_with_content_length_collects_body)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
                       "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n"
                       "{\"model\":\"m\"}\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, req, &used), DP_HTTP_DONE);
    cr_assert_eq(used, sizeof(req) - 1);
    cr_assert(buf_is(&hp.msg.body, "{\"model\":\"m\"}\r\n"));
    dp_http_dispose(&hp);
}

Test(dp_http, body_arriving_later_is_waited_for)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char head[] = "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n\r\nab";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, head, &used), DP_HTTP_MORE);
    cr_assert_eq(used, sizeof(head) - 1);
    cr_assert(hp.headers_done);
    cr_assert_not(hp.done);
    cr_assert_eq(feed_all(&hp, "cd", &used), DP_HTTP_DONE);
    cr_assert_eq(used, 2);
    cr_assert(buf_is(&hp.msg.body, "abcd"));
    dp_http_dispose(&hp);
}

Test(dp_http, chunked_body_is_reassembled)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "POST /v1/completions HTTP/1.1\r\nHost: gw\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n"
                       "1;ext=1\r\n \r\n"
                       "6\r\nworld!\r\n"
                       "0\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, req, &used), DP_HTTP_DONE);
    cr_assert_eq(used, sizeof(req) - 1);
    cr_assert(buf_is(&hp.msg.body, "hello world!"), "%.*s", (int)hp.msg.body.len, hp.msg.body.base);
    dp_http_dispose(&hp);
}

Test(dp_http, content_length_over_max_body_is_413_before_body_arrives)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_body = 100;
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 101\r\n\r\n";
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, req, &used), TG_ETOOBIG);
    cr_assert_eq(hp.error_status, 413, "status %d (%s)", hp.error_status, hp.error_msg);
    cr_assert_not_null(hp.error_msg);
    cr_assert_eq(hp.msg.body.len, 0);
    dp_http_dispose(&hp);
}

Test(dp_http, content_length_equal_to_max_body_is_accepted)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_body = 4;
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &lim);
    cr_assert_eq(
        feed_all(&hp, "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n\r\nabcd", &used),
        DP_HTTP_DONE);
    cr_assert(buf_is(&hp.msg.body, "abcd"));
    dp_http_dispose(&hp);
}

Test(dp_http, chunked_body_over_max_is_413)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_body = 8;
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, req, &used), TG_ETOOBIG);
    cr_assert_eq(hp.error_status, 413, "status %d (%s)", hp.error_status, hp.error_msg);
    cr_assert_leq(hp.msg.body.len, 8);
    dp_http_dispose(&hp);
}

Test(dp_http, too_many_headers_is_431)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_headers = 3;
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, req, &used), TG_ETOOBIG);
    cr_assert_eq(hp.error_status, 431, "status %d (%s)", hp.error_status, hp.error_msg);
    dp_http_dispose(&hp);
}

Test(dp_http, headers_at_count_limit_are_accepted)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_headers = 3;
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.1\r\nHost: gw\r\nB: 2\r\nC: 3\r\n\r\n", &used),
                 DP_HTTP_DONE);
    dp_http_dispose(&hp);
}

Test(dp_http, header_bytes_over_limit_is_431)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_header_bytes = 64;
    dp_http_parser_t hp;
    size_t used = 0;
    char req[256];
    char big[80];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %s\r\n\r\n", big);
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, req, &used), TG_ETOOBIG);
    cr_assert_eq(hp.error_status, 431, "status %d (%s)", hp.error_status, hp.error_msg);
    dp_http_dispose(&hp);
}

Test(dp_http, header_bytes_count_across_many_small_headers)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_header_bytes = 40;
    dp_http_parser_t hp;
    size_t used = 0;
    /* each header is small; together they pass 40 bytes */
    const char req[] = "GET / HTTP/1.1\r\nAa: 123456\r\nBb: 123456\r\nCc: 123456\r\n"
                       "Dd: 123456\r\nEe: 123456\r\n\r\n";
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, req, &used), TG_ETOOBIG);
    cr_assert_eq(hp.error_status, 431);
    dp_http_dispose(&hp);
}

Test(dp_http, captured_header_value_over_8k_is_431)
{
    dp_http_parser_t hp;
    size_t used = 0;
    static char req[10000];
    char big[8200];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n", big);
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, req, &used), TG_ETOOBIG);
    cr_assert_eq(hp.error_status, 431);
    dp_http_dispose(&hp);
}

Test(dp_http, url_too_long_is_414)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_url = 16;
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, "GET /0123456789abcdefg HTTP/1.1\r\n\r\n", &used), TG_ETOOBIG);
    cr_assert_eq(hp.error_status, 414, "status %d (%s)", hp.error_status, hp.error_msg);
    dp_http_dispose(&hp);
}

Test(dp_http, url_too_long_fed_byte_by_byte_is_414)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_url = 16;
    dp_http_parser_t hp;
    size_t consumed = 0;
    const char req[] = "GET /0123456789abcdefg HTTP/1.1\r\n\r\n";
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_bytes(&hp, req, sizeof(req) - 1, &consumed), TG_ETOOBIG);
    cr_assert_eq(hp.error_status, 414);
    cr_assert_leq(hp.msg.url.len, 16);
    dp_http_dispose(&hp);
}

Test(dp_http, garbage_is_400)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "\x01\x02 hello there\r\n\r\n", &used), TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    cr_assert_not_null(hp.error_msg);
    dp_http_dispose(&hp);
}

Test(dp_http, bad_header_token_is_400)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.1\r\nBad(Header: x\r\n\r\n", &used), TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
}

Test(dp_http, space_inside_header_name_is_400)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", &used), TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
}

Test(dp_http, space_before_header_colon_is_400)
{
    /* RFC 9112 5.1: a server MUST reject whitespace between a field name and the colon; llhttp 8
     * accepts it, and "Authorization : x" would otherwise be silently not a credential */
    dp_http_parser_t hp;
    size_t consumed = 0;
    const char req[] = "GET / HTTP/1.1\r\nAuthorization : Bearer a\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_bytes(&hp, req, sizeof(req) - 1, &consumed), TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
}

Test(dp_http, bare_lf_line_endings_are_400)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.1\r\nA: x\nB: y\r\n\r\n", &used), TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
}

Test(dp_http, duplicate_content_length_is_400)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(
        feed_all(&hp, "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", &used),
        TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
}

Test(dp_http, both_content_length_and_chunked_is_400)
{
    dp_http_parser_t hp;
    size_t used = 0;
    /* request smuggling shape: must not be accepted (no lenient flags) */
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp,
                          "POST / HTTP/1.1\r\nContent-Length: 5\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                          &used),
                 TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
}

Test(dp_http, pipelined_requests_complete_one_at_a_time)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char first[] = "POST /v1/embeddings HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer one\r\n"
                         "Content-Length: 3\r\n\r\nabc";
    const char second[] = "GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-Request-Id: two\r\n\r\n";
    char both[sizeof(first) + sizeof(second)];
    memcpy(both, first, sizeof(first) - 1);
    memcpy(both + sizeof(first) - 1, second, sizeof(second));
    size_t total = sizeof(first) - 1 + sizeof(second) - 1;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_n(&hp, both, total, &used), DP_HTTP_DONE);
    cr_assert_eq(used, sizeof(first) - 1);

    dp_http_msg_t m1;
    dp_http_take(&hp, &m1);
    cr_assert_eq(m1.method, HTTP_POST);
    cr_assert(buf_is(&m1.body, "abc"));
    cr_assert(buf_is(&m1.authorization, "Bearer one"));

    dp_http_next(&hp);
    size_t used2 = 0;
    cr_assert_eq(dp_http_feed(&hp, both + used, total - used, &used2), DP_HTTP_DONE);
    cr_assert_eq(used2, total - used);
    cr_assert_eq(hp.msg.method, HTTP_GET);
    cr_assert(buf_is(&hp.msg.url, "/v1/models"));
    cr_assert(buf_is(&hp.msg.request_id, "two"));
    /* the first request's credential does not carry over */
    cr_assert_eq(hp.msg.authorization.len, 0);
    cr_assert_eq(hp.msg.body.len, 0);
    /* the taken message is independent of the parser */
    cr_assert(buf_is(&m1.url, "/v1/embeddings"));
    dp_http_msg_dispose(&m1);
    dp_http_dispose(&hp);
}

Test(dp_http, keep_alive_reuses_header_buffers_and_clears_the_last_values)
{
    /* the connection lends its message to each request: the second request on a connection
     * gets the first's small buffers back, empty, and none of its values */
    dp_http_parser_t hp;
    size_t used = 0;
    const char first[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
                         "Authorization: Bearer one\r\nX-Request-Id: r1\r\n"
                         "X-Tollgate-Fallbacks: a,b\r\nCache-Control: no-store\r\n"
                         "Anthropic-Beta: b1\r\nContent-Length: 3\r\n\r\nabc";
    const char second[] = "POST /v1/messages HTTP/1.1\r\nHost: gw2\r\nX-Api-Key: k2\r\n"
                          "Content-Length: 0\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, first, &used), DP_HTTP_DONE);
    const char *auth = hp.msg.authorization.base, *url = hp.msg.url.base;
    cr_assert_not_null(auth);
    dp_http_next(&hp);
    cr_assert_eq(hp.msg.authorization.base, auth, "kept across dp_http_next");
    cr_assert_eq(hp.msg.authorization.len, 0);
    cr_assert_eq(hp.msg.body.base, NULL, "a body is never kept");
    cr_assert_eq(feed_all(&hp, second, &used), DP_HTTP_DONE);
    cr_assert(buf_is(&hp.msg.url, "/v1/messages"));
    cr_assert_eq(hp.msg.url.base, url, "the url buffer is reused");
    cr_assert(buf_is(&hp.msg.host, "gw2"));
    cr_assert(buf_is(&hp.msg.api_key, "k2"));
    cr_assert_eq(hp.msg.authorization.len, 0);
    cr_assert_eq(hp.msg.authorization.base, auth, "kept for the next request, empty");
    cr_assert_eq(hp.msg.request_id.len, 0);
    cr_assert_eq(hp.msg.fallbacks.len, 0);
    cr_assert_eq(hp.msg.cache_control.len, 0);
    cr_assert_eq(hp.msg.anthropic_beta.len, 0);
    cr_assert_eq(hp.msg.body.len, 0);
    dp_http_next(&hp);
    /* a credential in the kept buffer does not count as a second one */
    const char third[] = "GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-Api-Key: k3\r\n\r\n";
    cr_assert_eq(feed_all(&hp, third, &used), DP_HTTP_DONE);
    cr_assert(buf_is(&hp.msg.api_key, "k3"));
    dp_http_dispose(&hp);
}

Test(dp_http, a_large_header_buffer_is_not_kept_for_the_next_request)
{
    dp_http_parser_t hp;
    size_t used = 0;
    char big[2048];
    char value[1000];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: gw\r\nAuthorization: %s\r\n\r\n", value);
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, big, &used), DP_HTTP_DONE);
    cr_assert_eq(hp.msg.authorization.len, sizeof(value) - 1);
    dp_http_next(&hp);
    cr_assert_null(hp.msg.authorization.base, "a connection does not hold a large value idle");
    cr_assert_eq(hp.msg.authorization.cap, 0);
    cr_assert_eq(feed_all(&hp, big, &used), DP_HTTP_DONE, "and the next one may be as large");
    cr_assert_eq(hp.msg.authorization.len, sizeof(value) - 1);
    dp_http_dispose(&hp);
}

Test(dp_http, a_moved_message_outlives_the_parser_which_keeps_its_limits)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_url = 32;
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, "GET /one HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r1\r\n\r\n", &used),
                 DP_HTTP_DONE);
    dp_http_msg_t m;
    dp_http_msg_move(&m, &hp.msg);
    cr_assert_null(hp.msg.url.base);
    dp_http_next(&hp);
    cr_assert_eq(feed_all(&hp, "GET /two HTTP/1.1\r\nHost: gw\r\n\r\n", &used), DP_HTTP_DONE);
    cr_assert(buf_is(&hp.msg.url, "/two"));
    cr_assert_eq(hp.msg.request_id.len, 0);
    dp_http_next(&hp);
    /* the limits stayed with the parser */
    cr_assert_lt(
        feed_all(&hp, "GET /0123456789012345678901234567890123456789 HTTP/1.1\r\n\r\n", &used), 0);
    cr_assert_eq(hp.error_status, 414);
    dp_http_dispose(&hp);
    cr_assert(buf_is(&m.url, "/one"));
    cr_assert(buf_is(&m.request_id, "r1"));
    dp_http_msg_dispose(&m);
}

Test(dp_http, next_resets_header_limits_for_the_following_request)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    lim.max_headers = 2;
    dp_http_parser_t hp;
    size_t used = 0;
    const char req[] = "GET / HTTP/1.1\r\nHost: gw\r\nB: 2\r\n\r\n";
    dp_http_init(&hp, &lim);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(feed_all(&hp, req, &used), DP_HTTP_DONE, "request %d", i);
        dp_http_next(&hp);
    }
    dp_http_dispose(&hp);
}

Test(dp_http, connection_close_is_not_keep_alive)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", &used),
                 DP_HTTP_DONE);
    cr_assert_not(hp.msg.keep_alive);
    dp_http_dispose(&hp);
}

Test(dp_http, http10_is_not_keep_alive)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.0\r\nHost: gw\r\n\r\n", &used), DP_HTTP_DONE);
    cr_assert_not(hp.msg.keep_alive);
    dp_http_dispose(&hp);
}

Test(dp_http, http10_with_keep_alive_header_is_keep_alive)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &used),
                 DP_HTTP_DONE);
    cr_assert(hp.msg.keep_alive);
    dp_http_dispose(&hp);
}

Test(dp_http, duplicate_authorization_is_400)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp,
                          "GET / HTTP/1.1\r\nAuthorization: Bearer a\r\n"
                          "authorization: Bearer b\r\n\r\n",
                          &used),
                 TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    cr_assert_not_null(strstr(hp.error_msg, "duplicate"), "%s", hp.error_msg);
    dp_http_dispose(&hp);
}

Test(dp_http, duplicate_x_api_key_is_400)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.1\r\nx-api-key: a\r\nX-API-Key: b\r\n\r\n", &used),
                 TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    cr_assert_not_null(strstr(hp.error_msg, "duplicate"), "%s", hp.error_msg);
    dp_http_dispose(&hp);
}

Test(dp_http, expect_100_continue_is_flagged)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char head[] =
        "POST / HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(dp_http_feed(&hp, head, strlen(head), &used), DP_HTTP_HEAD);
    cr_assert_eq(used, strlen(head));
    /* known once the headers are in, before the body: the server answers 100 then */
    cr_assert(hp.headers_done);
    cr_assert(hp.msg.expect_continue);
    cr_assert_eq(feed_all(&hp, "{}", &used), DP_HTTP_DONE);
    cr_assert(hp.msg.expect_continue);
    dp_http_dispose(&hp);
}

/* ---- RFC 9112 framing that llhttp 8.1 lets through ---- */

/* Feeds s whole, and byte by byte on a second parser; both must fail with `status`. */
static void assert_refused(const char *s, int status)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    int rc = feed_all(&hp, s, &used);
    cr_assert(rc < 0, "accepted (rc %d): %s", rc, s);
    cr_assert_eq(hp.error_status, status, "status %d (%s) for: %s", hp.error_status, hp.error_msg,
                 s);
    cr_assert_not_null(hp.error_msg);
    dp_http_dispose(&hp);
    dp_http_init(&hp, &DEFAULT_LIMITS);
    rc = feed_bytes(&hp, s, strlen(s), &used);
    cr_assert(rc < 0, "accepted byte by byte (rc %d): %s", rc, s);
    cr_assert_eq(hp.error_status, status, "byte by byte: status %d (%s) for: %s", hp.error_status,
                 hp.error_msg, s);
    dp_http_dispose(&hp);
}

Test(dp_http, chunk_data_not_followed_by_crlf_is_400)
{
    /* llhttp 8.1 skips the two bytes after a chunk's data unread: "abcXX" would pass */
    assert_refused("POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabcXX0\r\n\r\n",
                   400);
    assert_refused("POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\n0\r\n\r\n",
                   400);
    /* a chunk shorter than its size eats into the next chunk's size line */
    assert_refused("POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nab\r\n0\r\n\r\n",
                   400);
}

Test(dp_http, chunk_crlf_split_across_reads_is_accepted)
{
    dp_http_parser_t hp;
    size_t consumed = 0;
    const char req[] = "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_bytes(&hp, req, sizeof(req) - 1, &consumed), DP_HTTP_DONE);
    cr_assert(buf_is(&hp.msg.body, "abcde"));
    dp_http_dispose(&hp);
}

Test(dp_http, huge_chunk_extension_is_400)
{
    static char req[3 * DP_HTTP_MAX_CHUNK_LINE];
    char ext[DP_HTTP_MAX_CHUNK_LINE + 10];
    memset(ext, 'e', sizeof(ext) - 1);
    ext[sizeof(ext) - 1] = '\0';
    snprintf(req, sizeof(req),
             "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3;%s\r\nabc\r\n0\r\n\r\n",
             ext);
    assert_refused(req, 400);
    /* the same on the last chunk, and on a size line that never ends */
    snprintf(req, sizeof(req),
             "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n0;%s\r\n\r\n",
             ext);
    assert_refused(req, 400);
    dp_http_parser_t hp;
    size_t used = 0;
    snprintf(req, sizeof(req),
             "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3;%s", ext);
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, req, &used), TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
}

Test(dp_http, short_chunk_extension_is_accepted)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp,
                          "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3;name=\"v\"\r\nabc\r\n0;x=y\r\n\r\n",
                          &used),
                 DP_HTTP_DONE);
    cr_assert(buf_is(&hp.msg.body, "abc"));
    dp_http_dispose(&hp);
}

Test(dp_http, host_is_required_once_in_http11)
{
    assert_refused("GET / HTTP/1.1\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    const char *ok[] = {"GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
                        "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
                        "GET / HTTP/1.1\r\nhOsT: gw.example.com:443\r\n\r\n"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        dp_http_parser_t hp;
        size_t used = 0;
        dp_http_init(&hp, &DEFAULT_LIMITS);
        cr_assert_eq(feed_all(&hp, ok[i], &used), DP_HTTP_DONE, "%s: %s", ok[i], hp.error_msg);
        dp_http_dispose(&hp);
    }
}

Test(dp_http, versions_other_than_10_and_11_are_refused)
{
    assert_refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    assert_refused("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    assert_refused("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    assert_refused("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505);
    assert_refused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
    assert_refused("GET / \r\nHost: a\r\n\r\n", 400);
    assert_refused("GET / FOO/1.1\r\nHost: a\r\n\r\n", 400);
}

Test(dp_http, http09_request_line_is_refused_at_once)
{
    /* without this, llhttp waits for headers a 0.9 client never sends: a hang to the timeout */
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET /\r\n", &used), TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
    assert_refused("GET /v1/models\r\n", 400);
}

Test(dp_http, transfer_codings_other_than_chunked_are_501)
{
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
    /* llhttp takes this one (chunked is last) and would hand over gzip bytes as the body */
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                   "0\r\n\r\n",
                   501);
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501);
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   400);
    assert_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

Test(dp_http, obs_fold_is_400)
{
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer\r\n\tk\r\n\r\n", 400);
}

Test(dp_http, bare_cr_and_nul_in_headers_are_400)
{
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", 400);
    dp_http_parser_t hp;
    size_t used = 0;
    const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n";
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_n(&hp, nul, sizeof(nul) - 1, &used), TG_EINVAL);
    cr_assert_eq(hp.error_status, 400);
    dp_http_dispose(&hp);
}

Test(dp_http, trailers_cannot_set_a_credential)
{
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp,
                          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "0\r\nAuthorization: Bearer smuggled\r\nHost: b\r\n\r\n",
                          &used),
                 DP_HTTP_DONE);
    cr_assert_eq(hp.msg.authorization.len, 0);
    cr_assert(buf_is(&hp.msg.host, "a"));
    dp_http_dispose(&hp);
}

Test(dp_http, head_stops_before_the_body)
{
    dp_http_parser_t hp;
    size_t used = 0;
    const char head[] =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k\r\n"
        "Content-Length: 5\r\n\r\n";
    char req[sizeof(head) + 5];
    memcpy(req, head, sizeof(head) - 1);
    memcpy(req + sizeof(head) - 1, "hello", 5);
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(dp_http_feed(&hp, req, sizeof(req) - 1, &used), DP_HTTP_HEAD);
    cr_assert_eq(used, sizeof(head) - 1);
    cr_assert_eq(hp.msg.body.len, 0, "no body byte is read before the caller says so");
    cr_assert(buf_is(&hp.msg.authorization, "Bearer k"));
    size_t used2 = 0;
    cr_assert_eq(dp_http_feed(&hp, req + used, sizeof(req) - 1 - used, &used2), DP_HTTP_DONE);
    cr_assert(buf_is(&hp.msg.body, "hello"));
    dp_http_dispose(&hp);
    /* no body: straight to the end, no stop */
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &used),
                 DP_HTTP_DONE);
    dp_http_dispose(&hp);
}

Test(dp_http, body_limit_message_names_the_limit_and_the_flag)
{
    dp_http_limits_t lim = DEFAULT_LIMITS;
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &lim);
    cr_assert_eq(
        feed_all(&hp, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4194305\r\n\r\n", &used),
        TG_ETOOBIG);
    cr_assert_str_eq(hp.error_msg,
                     "request body is larger than the 4 MiB limit (--max-body-bytes)");
    dp_http_dispose(&hp);
    lim.max_body = 1500;
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1501\r\n\r\n", &used),
                 TG_ETOOBIG);
    cr_assert_str_eq(hp.error_msg,
                     "request body is larger than the 1500 bytes limit (--max-body-bytes)");
    dp_http_dispose(&hp);
    lim.max_body = 8;
    dp_http_init(&hp, &lim);
    cr_assert_eq(feed_all(&hp,
                          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
                          &used),
                 TG_ETOOBIG);
    cr_assert_not_null(strstr(hp.error_msg, "--max-body-bytes"), "%s", hp.error_msg);
    dp_http_dispose(&hp);
}

Test(dp_http, absolute_form_target_routes_by_its_path)
{
    const char *cases[][2] = {
        {"http://gw.example.com/v1/chat/completions", "/v1/chat/completions"},
        {"HTTPS://gw:8443/v1/models?x=1", "/v1/models"},
        {"http://gw", "/"},
        {"http://gw?q", "/"},
        {"/v1/models", "/v1/models"},
        {"ftp://gw/v1/models", "ftp://gw/v1/models"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dp_http_msg_t m;
        memset(&m, 0, sizeof(m));
        tg_buf_init(&m.url, 256);
        cr_assert_eq(tg_buf_append(&m.url, cases[i][0], strlen(cases[i][0])), 0);
        const char *path;
        size_t plen;
        dp_http_path(&m, &path, &plen);
        cr_assert(tg_mem_eq(path, plen, cases[i][1], strlen(cases[i][1])), "%s -> %.*s",
                  cases[i][0], (int)plen, path);
        dp_http_msg_dispose(&m);
    }
    dp_http_parser_t hp;
    size_t used = 0;
    dp_http_init(&hp, &DEFAULT_LIMITS);
    cr_assert_eq(feed_all(&hp,
                          "POST http://gw/v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
                          "Content-Length: 2\r\n\r\n{}",
                          &used),
                 DP_HTTP_DONE);
    const char *path;
    size_t plen;
    dp_http_path(&hp.msg, &path, &plen);
    cr_assert(tg_mem_eq(path, plen, "/v1/chat/completions", 20));
    dp_http_dispose(&hp);
}
