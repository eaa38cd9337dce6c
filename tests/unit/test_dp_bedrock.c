/* test_dp_bedrock.c: the Bedrock adapter and what it stands on: SigV4 (AWS's published test
 * vectors), the event-stream framing (CRCs, reassembly split at every byte), request and answer
 * translation. The transcripts in tests/golden/bedrock cover the rest end to end. */
#include <criterion/criterion.h>
#include <string.h>

#include "eventstream.h"
#include "provider.h"
#include "sigv4.h"

/* ---- SigV4 ---- */

#define SUITE_DATE "20150830T123600Z"
#define SUITE_KEY "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static dp_sigv4_req_t suite_req(const dp_sigv4_header_t *hs, size_t n, const char *method,
                                const char *payload_hash)
{
    dp_sigv4_req_t r = {.method = method,
                        .canonical_uri = "/",
                        .canonical_query = "",
                        .headers = hs,
                        .nheaders = n,
                        .payload_hash = payload_hash,
                        .amz_date = SUITE_DATE,
                        .region = "us-east-1",
                        .service = "service",
                        .access_key_id = SUITE_KEY,
                        .secret_access_key = SUITE_SECRET};
    return r;
}

/* AWS Signature Version 4 test suite, get-vanilla. */
Test(dp_sigv4, aws_suite_get_vanilla)
{
    dp_sigv4_header_t hs[] = {{"x-amz-date", SUITE_DATE}, {"host", "example.amazonaws.com"}};
    dp_sigv4_req_t r = suite_req(hs, 2, "GET", EMPTY_SHA256);
    tg_buf_t auth = TG_BUF_INIT(4096);
    tg_buf_t cr = TG_BUF_INIT(4096);
    cr_assert_eq(dp_sigv4_sign(&r, &auth, &cr, NULL), 0);
    const char *want_cr = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                          "host;x-amz-date\n" EMPTY_SHA256;
    cr_assert(tg_mem_eq(cr.base, cr.len, want_cr, strlen(want_cr)), "[%.*s]", (int)cr.len, cr.base);
    const char *want = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                       "aws4_request, SignedHeaders=host;x-amz-date, "
                       "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    cr_assert(tg_mem_eq(auth.base, auth.len, want, strlen(want)), "[%.*s]", (int)auth.len,
              auth.base);
    tg_buf_dispose(&auth);
    tg_buf_dispose(&cr);
}

/* AWS Signature Version 4 test suite, post-x-www-form-urlencoded: a body and a content type. */
Test(dp_sigv4, aws_suite_post_x_www_form_urlencoded)
{
    char hash[65];
    dp_sigv4_sha256_hex("Param1=value1", 13, hash);
    cr_assert_str_eq(hash, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    dp_sigv4_header_t hs[] = {{"host", "example.amazonaws.com"},
                              {"content-type", "application/x-www-form-urlencoded"},
                              {"x-amz-date", SUITE_DATE}};
    dp_sigv4_req_t r = suite_req(hs, 3, "POST", hash);
    tg_buf_t auth = TG_BUF_INIT(4096);
    tg_buf_t sts = TG_BUF_INIT(4096);
    cr_assert_eq(dp_sigv4_sign(&r, &auth, NULL, &sts), 0);
    const char *want_sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/"
                           "aws4_request\n"
                           "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281";
    cr_assert(tg_mem_eq(sts.base, sts.len, want_sts, strlen(want_sts)), "[%.*s]", (int)sts.len,
              sts.base);
    const char *want = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                       "aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                       "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a";
    cr_assert(tg_mem_eq(auth.base, auth.len, want, strlen(want)), "[%.*s]", (int)auth.len,
              auth.base);
    tg_buf_dispose(&auth);
    tg_buf_dispose(&sts);
}

/* AWS Signature Version 4 test suite, get-header-value-trim: values lose outer blanks and inner
 * runs become one space. */
Test(dp_sigv4, aws_suite_get_header_value_trim)
{
    dp_sigv4_header_t hs[] = {{"host", "example.amazonaws.com"},
                              {"my-header1", " value1"},
                              {"my-header2", " \"a   b   c\""},
                              {"x-amz-date", SUITE_DATE}};
    dp_sigv4_req_t r = suite_req(hs, 4, "GET", EMPTY_SHA256);
    tg_buf_t auth = TG_BUF_INIT(4096);
    cr_assert_eq(dp_sigv4_authorization(&r, &auth), 0);
    const char *want = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                       "aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, "
                       "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736";
    cr_assert(tg_mem_eq(auth.base, auth.len, want, strlen(want)), "[%.*s]", (int)auth.len,
              auth.base);
    tg_buf_dispose(&auth);
}

Test(dp_sigv4, canonical_uri_encodes_the_sent_path_once_more)
{
    tg_buf_t b = TG_BUF_INIT(4096);
    const char *path = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x-v1"
                       "%3A0/converse";
    cr_assert_eq(dp_sigv4_canonical_uri(&b, path, strlen(path)), 0);
    const char *want = "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A1%253Ainference-profile"
                       "%252Fus.x-v1%253A0/converse";
    cr_assert(tg_mem_eq(b.base, b.len, want, strlen(want)), "[%.*s]", (int)b.len, b.base);
    tg_buf_reset(&b);
    cr_assert_eq(dp_sigv4_canonical_uri(&b, "", 0), 0);
    cr_assert(tg_mem_eq(b.base, b.len, "/", 1));
    tg_buf_dispose(&b);
}

Test(dp_sigv4, amz_date_is_utc)
{
    char d[17];
    dp_sigv4_amz_date(1764072000, d);
    cr_assert_str_eq(d, "20251125T120000Z");
    dp_sigv4_amz_date(1440938160, d);
    cr_assert_str_eq(d, SUITE_DATE);
}

Test(dp_sigv4, refuses_bad_inputs)
{
    tg_buf_t auth = TG_BUF_INIT(4096);
    dp_sigv4_header_t upper[] = {{"Host", "example.amazonaws.com"}, {"x-amz-date", SUITE_DATE}};
    dp_sigv4_req_t r = suite_req(upper, 2, "GET", EMPTY_SHA256);
    cr_assert_eq(dp_sigv4_authorization(&r, &auth), TG_EINVAL);
    dp_sigv4_header_t twice[] = {{"host", "a"}, {"host", "b"}};
    r = suite_req(twice, 2, "GET", EMPTY_SHA256);
    cr_assert_eq(dp_sigv4_authorization(&r, &auth), TG_EINVAL);
    dp_sigv4_header_t ok[] = {{"host", "a"}};
    r = suite_req(ok, 1, "GET", EMPTY_SHA256);
    r.amz_date = "2015-08-30";
    cr_assert_eq(dp_sigv4_authorization(&r, &auth), TG_EINVAL);
    r = suite_req(ok, 1, "GET", EMPTY_SHA256);
    r.region = "us east";
    cr_assert_eq(dp_sigv4_authorization(&r, &auth), TG_EINVAL);
    cr_assert_eq(auth.len, 0);
    tg_buf_dispose(&auth);
}

/* ---- event stream ---- */

Test(dp_eventstream, crc32_check_value)
{
    cr_assert_eq(dp_crc32(0, "123456789", 9), 0xCBF43926u);
    cr_assert_eq(dp_crc32(dp_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    cr_assert_eq(dp_crc32(0, "", 0), 0u);
}

static int encode_event(tg_buf_t *out, const char *type, const char *payload)
{
    const char *names[] = {":event-type", ":content-type", ":message-type"};
    const char *values[] = {type, "application/json", "event"};
    return dp_es_encode(out, names, values, 3, payload, strlen(payload));
}

typedef struct seen {
    int n;
    char types[16][32];
    char payloads[16][128];
} seen_t;

static int on_msg(void *ud, const dp_es_msg_t *m)
{
    seen_t *s = ud;
    cr_assert_lt(s->n, 16);
    cr_assert_lt(m->event_type_len, 32);
    cr_assert_lt(m->payload_len, 128);
    if (m->event_type_len)
        memcpy(s->types[s->n], m->event_type, m->event_type_len);
    if (m->payload_len)
        memcpy(s->payloads[s->n], m->payload, m->payload_len);
    s->n++;
    return 0;
}

Test(dp_eventstream, messages_split_at_every_byte_and_every_pair_of_bytes)
{
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    cr_assert_eq(encode_event(&b, "messageStart", "{\"role\":\"assistant\"}"), 0);
    cr_assert_eq(encode_event(&b, "contentBlockDelta", "{\"delta\":{\"text\":\"Hi\"}}"), 0);
    cr_assert_eq(encode_event(&b, "messageStop", ""), 0);
    for (size_t i = 0; i <= b.len; i++) {
        for (size_t j = i; j <= b.len; j += (j < i + 40 ? 1 : 7)) {
            dp_es_t es;
            seen_t s = {0};
            dp_es_init(&es, 1u << 20);
            cr_assert_eq(dp_es_feed(&es, b.base, i, on_msg, &s), 0);
            cr_assert_eq(dp_es_feed(&es, b.base + i, j - i, on_msg, &s), 0);
            cr_assert_eq(dp_es_feed(&es, b.base + j, b.len - j, on_msg, &s), 0);
            cr_assert_eq(s.n, 3, "split at %zu and %zu", i, j);
            cr_assert_eq(dp_es_pending(&es), 0);
            cr_assert_str_eq(s.types[0], "messageStart");
            cr_assert_str_eq(s.types[1], "contentBlockDelta");
            cr_assert_str_eq(s.payloads[1], "{\"delta\":{\"text\":\"Hi\"}}");
            cr_assert_str_eq(s.types[2], "messageStop");
            cr_assert_str_eq(s.payloads[2], "");
            dp_es_dispose(&es);
        }
    }
    /* and one byte at a time */
    dp_es_t es;
    seen_t s = {0};
    dp_es_init(&es, 1u << 20);
    for (size_t i = 0; i < b.len; i++)
        cr_assert_eq(dp_es_feed(&es, b.base + i, 1, on_msg, &s), 0);
    cr_assert_eq(s.n, 3);
    dp_es_dispose(&es);
    tg_buf_dispose(&b);
}

static int feed_all(const char *p, size_t n, seen_t *s)
{
    dp_es_t es;
    dp_es_init(&es, 1u << 20);
    int rc = dp_es_feed(&es, p, n, on_msg, s);
    dp_es_dispose(&es);
    return rc;
}

Test(dp_eventstream, a_bad_message_crc_is_refused_wherever_the_stream_is_split)
{
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    cr_assert_eq(encode_event(&b, "messageStart", "{}"), 0);
    cr_assert_eq(encode_event(&b, "contentBlockDelta", "{\"delta\":{\"text\":\"Hi\"}}"), 0);
    b.base[b.len - 8] ^= 1; /* a payload byte of the second message */
    for (size_t i = 0; i <= b.len; i++) {
        dp_es_t es;
        seen_t s = {0};
        dp_es_init(&es, 1u << 20);
        int rc = dp_es_feed(&es, b.base, i, on_msg, &s);
        if (rc == 0)
            rc = dp_es_feed(&es, b.base + i, b.len - i, on_msg, &s);
        cr_assert_eq(rc, TG_EINVAL, "split at %zu", i);
        cr_assert_eq(s.n, 1, "only the good message is delivered (split at %zu)", i);
        dp_es_dispose(&es);
    }
    tg_buf_dispose(&b);
}

Test(dp_eventstream, a_bad_prelude_crc_is_refused_as_soon_as_the_prelude_is_whole)
{
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    cr_assert_eq(encode_event(&b, "messageStart", "{}"), 0);
    b.base[3] ^= 0x10; /* the total length: the prelude CRC no longer holds */
    dp_es_t es;
    seen_t s = {0};
    dp_es_init(&es, 1u << 20);
    cr_assert_eq(dp_es_feed(&es, b.base, 11, on_msg, &s), 0);
    cr_assert_eq(dp_es_feed(&es, b.base + 11, 1, on_msg, &s), TG_EINVAL);
    dp_es_dispose(&es);
    tg_buf_dispose(&b);
}

/* A prelude with a correct CRC announcing len bytes (and hlen of headers). */
static void prelude(char *p, uint32_t len, uint32_t hlen)
{
    uint32_t v[2] = {len, hlen};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++)
            p[4 * k + i] = (char)(unsigned char)(v[k] >> (24 - 8 * i));
    uint32_t crc = dp_crc32(0, p, 8);
    for (int i = 0; i < 4; i++)
        p[8 + i] = (char)(unsigned char)(crc >> (24 - 8 * i));
}

static void seal(char *p, size_t n)
{
    uint32_t crc = dp_crc32(0, p, n - 4);
    for (int i = 0; i < 4; i++)
        p[n - 4 + i] = (char)(unsigned char)(crc >> (24 - 8 * i));
}

Test(dp_eventstream, limits_and_malformed_lengths)
{
    char p[64];
    seen_t s = {0};
    prelude(p, 17u << 20, 0); /* past the 16 MiB limit: refused before any wait */
    dp_es_t es;
    dp_es_init(&es, 16u << 20);
    cr_assert_eq(dp_es_feed(&es, p, 12, on_msg, &s), TG_ETOOBIG);
    dp_es_dispose(&es);
    prelude(p, 15, 0); /* shorter than prelude and CRC */
    cr_assert_eq(feed_all(p, 12, &s), TG_EINVAL);
    prelude(p, 20, 8); /* headers longer than the message */
    cr_assert_eq(feed_all(p, 20, &s), TG_EINVAL);
    prelude(p, 16, 0); /* the smallest message: no headers, no payload */
    seal(p, 16);
    cr_assert_eq(feed_all(p, 16, &s), 0);
    cr_assert_eq(s.n, 1);
}

Test(dp_eventstream, headers_of_every_type_are_skipped_and_strings_read)
{
    /* bool true, bool false, byte, short, int, long, bytes, timestamp, uuid, then the string */
    static const unsigned char hdrs[] = {
        1,  'a', 0,                                           /* true */
        1,  'b', 1,                                           /* false */
        1,  'c', 2,   0x7f,                                   /* byte */
        1,  'd', 3,   0,    1,                                /* short */
        1,  'e', 4,   0,    0,   0,   1,                      /* int */
        1,  'f', 5,   0,    0,   0,   0,    0,   0,   0,   1, /* long */
        1,  'g', 6,   0,    3,   'x', 'y',  'z',              /* bytes */
        1,  'h', 8,   0,    0,   1,   0x8c, 0,   0,   0,   0, /* timestamp */
        1,  'i', 9,   1,    2,   3,   4,    5,   6,   7,   8,   9,   10, 11, 12, 13,  14,
        15, 16, /* uuid */
        11, ':', 'e', 'v',  'e', 'n', 't',  '-', 't', 'y', 'p', 'e', 7,  0,  2,  'o', 'k'};
    char p[256];
    size_t hlen = sizeof(hdrs);
    size_t n = 12 + hlen + 2 + 4;
    prelude(p, (uint32_t)n, (uint32_t)hlen);
    memcpy(p + 12, hdrs, hlen);
    memcpy(p + 12 + hlen, "{}", 2);
    seal(p, n);
    dp_es_msg_t m;
    cr_assert_eq(dp_es_parse(p, n, &m), 0);
    cr_assert(tg_mem_eq(m.event_type, m.event_type_len, "ok", 2));
    cr_assert(tg_mem_eq(m.payload, m.payload_len, "{}", 2));
    cr_assert_null(m.message_type);
    /* an unknown type has no size to skip */
    p[12 + 2] = 10;
    seal(p, n);
    cr_assert_eq(dp_es_parse(p, n, &m), TG_EINVAL);
    /* a string running past the headers */
    p[12 + 2] = 0;
    p[12 + hlen - 3] = 9;
    seal(p, n);
    cr_assert_eq(dp_es_parse(p, n, &m), TG_EINVAL);
}

/* ---- the adapter ---- */

static const dp_provider_ops_t *ops(void)
{
    const dp_provider_ops_t *o = dp_provider_ops(TG_PROVIDER_BEDROCK);
    cr_assert_not_null(o);
    cr_assert_str_eq(o->kind, "bedrock");
    cr_assert_str_eq(o->stream_content_type, "application/vnd.amazon.eventstream");
    return o;
}

static char *extra_headers[] = {"X-Team: ml"};

static tg_provider_t provider(void)
{
    tg_provider_t p = {.id = "br",
                       .kind = TG_PROVIDER_BEDROCK,
                       .base_url = "https://bedrock-runtime.us-east-1.amazonaws.com",
                       .headers = extra_headers,
                       .nheaders = 1,
                       .region = "us-east-1",
                       .aws_access_key_id = SUITE_KEY,
                       .aws_secret_access_key = SUITE_SECRET};
    return p;
}

typedef struct built {
    tg_buf_t url, body, headers;
    tg_err_t err;
    int rc;
} built_t;

static int add_line(void *ud, const char *line)
{
    tg_buf_t *h = ud;
    int rc = tg_buf_append(h, line, strlen(line));
    return rc == 0 ? tg_buf_append(h, "\n", 1) : rc;
}

static void build(built_t *b, const tg_provider_t *p, const char *model, int endpoint,
                  const char *json)
{
    dp_reqbody_t rb;
    tg_buf_init(&b->url, 1u << 20);
    tg_buf_init(&b->body, 16u << 20);
    tg_buf_init(&b->headers, 1u << 20);
    tg_err_clear(&b->err);
    cr_assert_eq(dp_reqbody_parse(&rb, endpoint, json, strlen(json), &b->err), 0, "%s", b->err.msg);
    dp_call_t c = {.provider = p,
                   .model = model,
                   .endpoint = endpoint,
                   .body = &rb,
                   .request_id = "req-1",
                   .now_s = 1764072000};
    b->rc = ops()->build(&c, add_line, &b->headers, &b->url, &b->body, &b->err);
    dp_reqbody_dispose(&rb);
}

static void built_dispose(built_t *b)
{
    tg_buf_dispose(&b->url);
    tg_buf_dispose(&b->body);
    tg_buf_dispose(&b->headers);
}

static bool has_line(const tg_buf_t *h, const char *line)
{
    size_t n = strlen(line);
    for (size_t at = 0; at < h->len;) {
        const char *nl = memchr(h->base + at, '\n', h->len - at);
        size_t len = (size_t)(nl - (h->base + at));
        if (tg_mem_eq(h->base + at, len, line, n))
            return true;
        at += len + 1;
    }
    return false;
}

static json_t *body_json(const built_t *b)
{
    json_t *j = json_loadb(b->body.base, b->body.len, JSON_REJECT_DUPLICATES, NULL);
    cr_assert_not_null(j, "[%.*s]", (int)b->body.len, b->body.base);
    return j;
}

Test(dp_bedrock, build_signs_and_sends_provider_headers)
{
    tg_provider_t p = provider();
    built_t b;
    build(&b, &p, "anthropic.claude-3-5-haiku-20241022-v1:0", DP_EP_CHAT,
          "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    cr_assert_eq(b.rc, 0, "%s", b.err.msg);
    cr_assert_str_eq(b.url.base, "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                                 "anthropic.claude-3-5-haiku-20241022-v1%3A0/converse");
    cr_assert(has_line(&b.headers, "X-Team: ml"));
    cr_assert(has_line(&b.headers, "x-amz-date: 20251125T120000Z"));
    cr_assert(has_line(&b.headers, "Expect:"));
    char hash[65], line[128];
    dp_sigv4_sha256_hex(b.body.base, b.body.len, hash);
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hash);
    cr_assert(has_line(&b.headers, line));
    cr_assert_not_null(tg_memmem(b.headers.base, b.headers.len,
                                 "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251125/"
                                 "us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;"
                                 "x-amz-content-sha256;x-amz-date, Signature=",
                                 150));
    cr_assert_null(tg_memmem(b.headers.base, b.headers.len, SUITE_SECRET, strlen(SUITE_SECRET)));
    cr_assert_null(tg_memmem(b.headers.base, b.headers.len, "x-amz-security-token", 20));
    built_dispose(&b);
}

Test(dp_bedrock, build_refuses_what_converse_cannot_express)
{
    tg_provider_t p = provider();
    static const struct {
        int endpoint;
        const char *model, *json, *contains;
    } cases[] = {
        {DP_EP_COMPLETIONS, "m", "{\"model\":\"c\",\"prompt\":\"x\"}", "completions endpoint"},
        {DP_EP_CHAT, "m",
         "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"http://x/cat.png\"}}]}]}",
         "data: URL"},
        {DP_EP_CHAT, "m",
         "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"data:image/tiff;base64,AAAA\"}}]}]}",
         "image/tiff"},
        {DP_EP_CHAT, "m",
         "{\"model\":\"c\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
         "[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
         "\"{bad\"}}]}]}",
         "not valid JSON"},
        {DP_EP_CHAT, "m", "{\"model\":\"c\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
         "tool_call_id"},
        {DP_EP_CHAT, "m",
         "{\"model\":\"c\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":"
         "\"x\"}]}",
         "n must be 1"},
        {DP_EP_CHAT, "m",
         "{\"model\":\"c\",\"messages\":[{\"role\":\"system\",\"content\":\"only system\"}]}",
         "at least one"},
        {DP_EP_CHAT, "m",
         "{\"model\":\"c\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
         "\"tool_choice\":\"sometimes\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "tool_choice"},
        {DP_EP_CHAT, "..", "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "not a bedrock model id"},
        {DP_EP_EMBEDDINGS, "amazon.titan-embed-text-v2:0", "{\"model\":\"e\",\"input\":[1,2,3]}",
         "take text"},
        {DP_EP_EMBEDDINGS, "meta.llama3", "{\"model\":\"e\",\"input\":\"x\"}", "cohere.embed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        built_t b;
        build(&b, &p, cases[i].model, cases[i].endpoint, cases[i].json);
        cr_assert_eq(b.rc, TG_EINVAL, "case %zu", i);
        cr_assert_eq(b.err.status, 400, "case %zu", i);
        cr_assert_not_null(strstr(b.err.msg, cases[i].contains), "case %zu: %s", i, b.err.msg);
        built_dispose(&b);
    }
}

Test(dp_bedrock, embeddings_bodies)
{
    tg_provider_t p = provider();
    built_t b;
    build(&b, &p, "cohere.embed-multilingual-v3", DP_EP_EMBEDDINGS,
          "{\"model\":\"e\",\"input\":\"one\"}");
    cr_assert_eq(b.rc, 0, "%s", b.err.msg);
    cr_assert_str_eq(b.url.base, "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                                 "cohere.embed-multilingual-v3/invoke");
    json_t *j = body_json(&b);
    json_t *want = json_pack("{s:[s],s:s}", "texts", "one", "input_type", "search_document");
    cr_assert(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    built_dispose(&b);
}

static int respond(dp_stream_state_t *st, int endpoint, int status, const char *body, tg_buf_t *out)
{
    dp_stream_state_init(st, endpoint, false);
    st->model = "m";
    st->request_id = "req-1";
    st->created = 7;
    return ops()->response(st, status, body, strlen(body), out);
}

Test(dp_bedrock, unreadable_2xx_answers_fail_and_errors_keep_the_message)
{
    dp_stream_state_t st;
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    cr_assert_lt(respond(&st, DP_EP_CHAT, 200, "not json", &out), 0);
    dp_stream_state_dispose(&st);
    cr_assert_lt(respond(&st, DP_EP_CHAT, 200, "{\"output\":{}}", &out), 0);
    dp_stream_state_dispose(&st);
    cr_assert_lt(respond(&st, DP_EP_EMBEDDINGS, 200, "{\"vectors\":[]}", &out), 0);
    dp_stream_state_dispose(&st);
    tg_buf_reset(&out);
    cr_assert_eq(respond(&st, DP_EP_CHAT, 403,
                         "{\"Message\":\"User is not authorized\",\"__type\":"
                         "\"AccessDeniedException:http://internal.amazon.com/coral/\"}",
                         &out),
                 DP_RESP_OUT);
    json_t *j = json_loadb(out.base, out.len, 0, NULL);
    json_t *want = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", "User is not authorized",
                             "type", "permission_error", "param", "code", "AccessDeniedException");
    cr_assert(json_equal(j, want), "[%.*s]", (int)out.len, out.base);
    cr_assert_not(st.usage.present);
    json_decref(j);
    json_decref(want);
    dp_stream_state_dispose(&st);
    tg_buf_dispose(&out);
}

/* Streams: the event-stream bytes of the messages given as (type, payload) pairs. */
static void stream_of(tg_buf_t *b, const char *const *ev, size_t n)
{
    for (size_t i = 0; i < n; i += 2)
        cr_assert_eq(encode_event(b, ev[i], ev[i + 1]), 0);
}

Test(dp_bedrock, error_messages_mid_stream_become_error_events_and_end_the_stream)
{
    tg_buf_t in = TG_BUF_INIT(1u << 20);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *ev[] = {"messageStart", "{\"role\":\"assistant\"}"};
    stream_of(&in, ev, 2);
    /* the generic error form: :message-type error with :error-code and :error-message */
    const char *names[] = {":message-type", ":error-code", ":error-message"};
    const char *values[] = {"error", "InternalFailure", "internal failure"};
    cr_assert_eq(dp_es_encode(&in, names, values, 3, "", 0), 0);
    const char *after[] = {"contentBlockDelta", "{\"delta\":{\"text\":\"late\"}}"};
    stream_of(&in, after, 2);
    dp_stream_state_t st;
    dp_stream_state_init(&st, DP_EP_CHAT, true);
    st.request_id = "r";
    st.model = "m";
    cr_assert_eq(ops()->stream_feed(&st, in.base, in.len, &out), 0);
    cr_assert_eq(ops()->stream_end(&st, true, &out), 0);
    cr_assert_not_null(tg_memmem(out.base, out.len,
                                 "data: {\"error\":{\"message\":\"internal failure\",\"type\":"
                                 "\"api_error\",\"param\":null,\"code\":\"InternalFailure\"}}\n\n",
                                 95));
    cr_assert_null(tg_memmem(out.base, out.len, "late", 4));
    cr_assert_null(tg_memmem(out.base, out.len, "[DONE]", 6));
    cr_assert_not(st.done);
    dp_stream_state_dispose(&st);
    tg_buf_dispose(&in);
    tg_buf_dispose(&out);
}

Test(dp_bedrock, a_stream_cut_before_message_stop_gets_no_done)
{
    tg_buf_t in = TG_BUF_INIT(1u << 20);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *ev[] = {
        "messageStart",      "{\"role\":\"assistant\"}",
        "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}",
        "unknownEvent",      "{\"x\":1}"};
    stream_of(&in, ev, 6);
    dp_stream_state_t st;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    /* all but the last 5 bytes: the unknown event stays incomplete */
    cr_assert_eq(ops()->stream_feed(&st, in.base, in.len - 5, &out), 0);
    cr_assert_eq(st.content_events, 1);
    size_t len = out.len;
    cr_assert_eq(ops()->stream_end(&st, false, &out), 0);
    cr_assert_eq(ops()->stream_end(&st, true, &out), 0);
    cr_assert_eq(out.len, len);
    cr_assert_not(st.done);
    dp_stream_state_dispose(&st);
    tg_buf_dispose(&in);
    tg_buf_dispose(&out);
}

Test(dp_bedrock, a_payload_that_is_not_json_aborts_the_stream)
{
    tg_buf_t in = TG_BUF_INIT(1u << 20);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *ev[] = {"contentBlockDelta", "not json"};
    stream_of(&in, ev, 2);
    dp_stream_state_t st;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_lt(ops()->stream_feed(&st, in.base, in.len, &out), 0);
    dp_stream_state_dispose(&st);
    tg_buf_dispose(&in);
    tg_buf_dispose(&out);
}

Test(dp_bedrock, cache_writes_are_split_by_ttl_from_cache_details)
{
    dp_stream_state_t st;
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    cr_assert_eq(respond(&st, DP_EP_CHAT, 200,
                         "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":"
                         "\"hi\"}]}},\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":10,"
                         "\"outputTokens\":3,\"totalTokens\":65,\"cacheReadInputTokens\":20,"
                         "\"cacheWriteInputTokens\":32,\"cacheDetails\":[{\"ttl\":\"1h\","
                         "\"inputTokens\":12},{\"ttl\":\"5m\",\"inputTokens\":20}]}}",
                         &out),
                 DP_RESP_OUT);
    cr_assert(st.usage.present);
    cr_assert_eq(st.usage.prompt, 62);
    cr_assert_eq(st.usage.cached, 20);
    cr_assert_eq(st.usage.cache_write, 20);
    cr_assert_eq(st.usage.cache_write_1h, 12);
    dp_stream_state_dispose(&st);
    /* without cacheDetails every write is a 5-minute one */
    tg_buf_reset(&out);
    cr_assert_eq(respond(&st, DP_EP_CHAT, 200,
                         "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":"
                         "\"hi\"}]}},\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":10,"
                         "\"outputTokens\":3,\"cacheWriteInputTokens\":32}}",
                         &out),
                 DP_RESP_OUT);
    cr_assert_eq(st.usage.cache_write, 32);
    cr_assert_eq(st.usage.cache_write_1h, 0);
    dp_stream_state_dispose(&st);
    tg_buf_dispose(&out);
}
