/* fuzz_http.c: drives dp_http_parser over arbitrary bytes fed in arbitrary pieces, with small
 * limits and pipelining, checking the limits always hold. */
#include <string.h>

#include "fuzz.h"
#include "http.h"

static void check_msg(const dp_http_msg_t *m, const dp_http_limits_t *lim)
{
    const char *path;
    size_t plen;
    FUZZ_CHECK(m->url.len <= lim->max_url);
    FUZZ_CHECK(m->body.len <= lim->max_body);
    FUZZ_CHECK(m->authorization.len <= 8192 && m->api_key.len <= 8192 && m->request_id.len <= 8192);
    dp_http_path(m, &path, &plen);
    FUZZ_CHECK(plen <= m->url.len);
    FUZZ_CHECK(!memchr(path, '?', plen));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    /* the first bytes choose the limits and how the rest is cut into reads */
    dp_http_limits_t lim = {
        .max_url = 8 + data[0] % 120,
        .max_header_bytes = 16 + (size_t)data[1] * 4,
        .max_headers = 1 + data[2] % 12,
        .max_body = (size_t)(data[3] % 64) * 8,
    };
    uint32_t seed = (uint32_t)data[0] << 16 | (uint32_t)data[1] << 8 | data[3];
    data += 4;
    size -= 4;

    dp_http_parser_t hp;
    dp_http_init(&hp, &lim);
    size_t at = 0;
    int messages = 0;
    while (at < size) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64;
        if (piece > size - at)
            piece = size - at;
        const char *p = (const char *)data + at;
        size_t left = piece;
        int rc = DP_HTTP_MORE;
        while (left > 0) {
            size_t used = 0;
            rc = dp_http_feed(&hp, p, left, &used);
            if (rc == DP_HTTP_MORE) {
                FUZZ_CHECK(used == left);
                left = 0;
                break;
            }
            if (rc == DP_HTTP_HEAD) {
                /* stopped at the end of the headers: no body byte is in yet */
                FUZZ_CHECK(used <= left);
                FUZZ_CHECK(hp.headers_done && !hp.done && hp.msg.body.len == 0);
                p += used;
                left -= used;
                rc = DP_HTTP_MORE;
                continue;
            }
            if (rc != DP_HTTP_DONE)
                break;
            FUZZ_CHECK(used <= left);
            FUZZ_CHECK(hp.done && hp.headers_done);
            dp_http_msg_t m;
            dp_http_take(&hp, &m);
            check_msg(&m, &lim);
            dp_http_msg_dispose(&m);
            dp_http_next(&hp);
            messages++;
            p += used;
            left -= used;
        }
        if (rc < 0) {
            FUZZ_CHECK(hp.error_status == 400 || hp.error_status == 413 || hp.error_status == 414 ||
                       hp.error_status == 431 || hp.error_status == 501 || hp.error_status == 503 ||
                       hp.error_status == 505);
            FUZZ_CHECK(hp.error_msg != NULL);
            FUZZ_CHECK((rc == TG_ETOOBIG) == (hp.error_status == 413 || hp.error_status == 414 ||
                                              hp.error_status == 431));
            break;
        }
        check_msg(&hp.msg, &lim);
        at += piece;
    }
    (void)messages;
    dp_http_dispose(&hp);
    return 0;
}
