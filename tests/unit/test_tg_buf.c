/* test_tg_buf.c: bounded buffers, JSON string escaping and the byte-string helpers. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tg_buf.h"

Test(tg_buf, append_within_max_stores_bytes)
{
    tg_buf_t b = TG_BUF_INIT(16);
    cr_assert_eq(tg_buf_append(&b, "abc", 3), 0);
    cr_assert_eq(tg_buf_append(&b, "def", 3), 0);
    cr_assert_eq(b.len, 6);
    cr_assert(b.cap >= 6);
    cr_assert_eq(memcmp(b.base, "abcdef", 6), 0);
    tg_buf_dispose(&b);
    cr_assert_null(b.base);
    cr_assert_eq(b.len, 0);
}

Test(tg_buf, append_past_max_fails_and_keeps_contents)
{
    tg_buf_t b = TG_BUF_INIT(4);
    cr_assert_eq(tg_buf_append(&b, "abc", 3), 0);
    cr_assert_eq(tg_buf_append(&b, "de", 2), TG_ETOOBIG);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(memcmp(b.base, "abc", 3), 0);
    tg_buf_dispose(&b);
}

Test(tg_buf, append_exactly_to_max_succeeds)
{
    tg_buf_t b = TG_BUF_INIT(4);
    cr_assert_eq(tg_buf_append(&b, "abcd", 4), 0);
    cr_assert_eq(b.len, 4);
    cr_assert_eq(tg_buf_append(&b, "e", 1), TG_ETOOBIG);
    cr_assert_eq(tg_buf_append(&b, "", 0), 0);
    cr_assert_eq(b.len, 4);
    tg_buf_dispose(&b);
}

Test(tg_buf, large_max_grows_capacity_without_exceeding_max)
{
    tg_buf_t b = TG_BUF_INIT(1000);
    char chunk[100];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 10; i++)
        cr_assert_eq(tg_buf_append(&b, chunk, sizeof(chunk)), 0);
    cr_assert_eq(b.len, 1000);
    cr_assert(b.cap <= 1000);
    cr_assert_eq(tg_buf_append(&b, "y", 1), TG_ETOOBIG);
    tg_buf_dispose(&b);
}

Test(tg_buf, reserve_past_max_fails)
{
    tg_buf_t b;
    tg_buf_init(&b, 8);
    cr_assert_eq(tg_buf_reserve(&b, 9), TG_ETOOBIG);
    cr_assert_eq(tg_buf_reserve(&b, 8), 0);
    cr_assert(b.cap >= 8);
    tg_buf_dispose(&b);
}

Test(tg_buf, appendf_formats_short_and_long_strings)
{
    tg_buf_t b = TG_BUF_INIT(4096);
    cr_assert_eq(tg_buf_appendf(&b, "n=%d s=%s", 42, "hi"), 0);
    cr_assert_eq(b.len, 9);
    cr_assert_eq(memcmp(b.base, "n=42 s=hi", 9), 0);
    char big[600];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* longer than the 256-byte stack buffer: takes the second vsnprintf path */
    cr_assert_eq(tg_buf_appendf(&b, "[%s]", big), 0);
    cr_assert_eq(b.len, 9 + 601);
    cr_assert_eq(b.base[9], '[');
    cr_assert_eq(b.base[9 + 600], ']');
    cr_assert_eq(b.base[9 + 1], 'z');
    tg_buf_dispose(&b);
}

Test(tg_buf, appendf_past_max_fails_and_keeps_contents)
{
    tg_buf_t b = TG_BUF_INIT(8);
    cr_assert_eq(tg_buf_append(&b, "ab", 2), 0);
    cr_assert_eq(tg_buf_appendf(&b, "%s", "0123456789"), TG_ETOOBIG);
    cr_assert_eq(b.len, 2);
    cr_assert_eq(memcmp(b.base, "ab", 2), 0);
    tg_buf_dispose(&b);
}

Test(tg_buf, json_str_escapes_quotes_backslash_and_control_chars)
{
    tg_buf_t b = TG_BUF_INIT(256);
    const char in[] = "a\"b\\c\nd\te\x01\x1f";
    cr_assert_eq(tg_buf_append_json_str(&b, in, sizeof(in) - 1), 0);
    const char want[] = "\"a\\\"b\\\\c\\u000ad\\u0009e\\u0001\\u001f\"";
    cr_assert_eq(b.len, sizeof(want) - 1, "got %.*s", (int)b.len, b.base);
    cr_assert_eq(memcmp(b.base, want, b.len), 0, "got %.*s", (int)b.len, b.base);
    tg_buf_dispose(&b);
}

Test(tg_buf, json_str_keeps_embedded_nul_escaped_and_utf8_as_is)
{
    tg_buf_t b = TG_BUF_INIT(64);
    const char in[] = "x\0y\xc3\xa9";
    cr_assert_eq(tg_buf_append_json_str(&b, in, sizeof(in) - 1), 0);
    const char want[] = "\"x\\u0000y\xc3\xa9\"";
    cr_assert_eq(b.len, sizeof(want) - 1);
    cr_assert_eq(memcmp(b.base, want, b.len), 0);
    tg_buf_dispose(&b);
}

Test(tg_buf, json_str_replaces_invalid_utf8_and_keeps_valid_sequences)
{
    tg_buf_t b = TG_BUF_INIT(256);
    /* a stray byte, a truncated sequence, an overlong '/', a surrogate, beyond U+10FFFF; then
     * valid 2-, 3- and 4-byte sequences */
    const char in[] = "a\xb4"
                      "b\xe2\x82"
                      "c\xc0\xaf"
                      "d\xed\xa0\x80"
                      "e\xf4\x90\x80\x80"
                      "f"
                      "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    cr_assert_eq(tg_buf_append_json_str(&b, in, sizeof(in) - 1), 0);
    const char want[] = "\"a\xef\xbf\xbd"
                        "b\xef\xbf\xbd\xef\xbf\xbd"
                        "c\xef\xbf\xbd\xef\xbf\xbd"
                        "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        "f"
                        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"";
    cr_assert_eq(b.len, sizeof(want) - 1, "%zu: %.*s", b.len, (int)b.len, b.base);
    cr_assert_eq(memcmp(b.base, want, b.len), 0);
    json_t *j = json_loadb(b.base, b.len, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(j, "the result is valid JSON (jansson refuses invalid UTF-8)");
    json_decref(j);
    tg_buf_dispose(&b);
}

Test(tg_buf, json_str_empty_is_two_quotes)
{
    tg_buf_t b = TG_BUF_INIT(8);
    cr_assert_eq(tg_buf_append_json_str(&b, "", 0), 0);
    cr_assert_eq(b.len, 2);
    cr_assert_eq(memcmp(b.base, "\"\"", 2), 0);
    tg_buf_dispose(&b);
}

Test(tg_buf, json_str_past_max_fails_and_keeps_contents)
{
    tg_buf_t b = TG_BUF_INIT(10);
    cr_assert_eq(tg_buf_append(&b, "ab", 2), 0);
    /* 6 chars + 2 quotes fit; the escape of the newline does not */
    cr_assert_eq(tg_buf_append_json_str(&b, "abc\ndef", 7), TG_ETOOBIG);
    cr_assert_eq(b.len, 2);
    cr_assert_eq(memcmp(b.base, "ab", 2), 0);
    tg_buf_dispose(&b);
}

Test(tg_buf, consume_drops_prefix_and_all)
{
    tg_buf_t b = TG_BUF_INIT(32);
    cr_assert_eq(tg_buf_append(&b, "hello world", 11), 0);
    tg_buf_consume(&b, 6);
    cr_assert_eq(b.len, 5);
    cr_assert_eq(memcmp(b.base, "world", 5), 0);
    tg_buf_consume(&b, 0);
    cr_assert_eq(b.len, 5);
    tg_buf_consume(&b, 100);
    cr_assert_eq(b.len, 0);
    tg_buf_dispose(&b);
}

Test(tg_buf, detach_hands_over_storage_and_empties)
{
    tg_buf_t b = TG_BUF_INIT(32);
    cr_assert_eq(tg_buf_append(&b, "abc", 3), 0);
    size_t n = 0;
    char *p = tg_buf_detach(&b, &n);
    cr_assert_not_null(p);
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(p, "abc", 3), 0);
    cr_assert_null(b.base);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    free(p);
    cr_assert_eq(tg_buf_append(&b, "d", 1), 0);
    cr_assert_eq(b.base[0], 'd');
    tg_buf_dispose(&b);
}

Test(tg_buf, reset_keeps_capacity)
{
    tg_buf_t b = TG_BUF_INIT(32);
    cr_assert_eq(tg_buf_append(&b, "abc", 3), 0);
    size_t cap = b.cap;
    tg_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    tg_buf_dispose(&b);
}

Test(tg_buf, memmem_finds_first_occurrence)
{
    const char *h = "abcabcab";
    cr_assert_eq(tg_memmem(h, 8, "bc", 2), h + 1);
    cr_assert_eq(tg_memmem(h, 8, "ab", 2), h);
    cr_assert_eq(tg_memmem(h, 8, "cab", 3), h + 2);
    cr_assert_null(tg_memmem(h, 8, "abd", 3));
    cr_assert_eq(tg_memmem(h, 8, "", 0), h);
    cr_assert_null(tg_memmem(h, 2, "abc", 3));
    /* a match that would run past hlen does not count */
    const char *t = "abcab";
    cr_assert_null(tg_memmem(t, 4, "cab", 3));
    cr_assert_eq(tg_memmem(t, 5, "cab", 3), t + 2);
    cr_assert_eq(tg_memmem(t, 3, "abc", 3), t);
}

Test(tg_buf, memmem_respects_length_not_nul)
{
    const char h[] = {'x', '\0', 'y', 'z'};
    cr_assert_eq(tg_memmem(h, 4, "yz", 2), h + 2);
    cr_assert_null(tg_memmem(h, 3, "yz", 2));
    cr_assert_eq(tg_memmem(h, 4, "\0y", 2), h + 1);
}

Test(tg_buf, memmem_skips_first_byte_matches_and_finds_one_byte_needles)
{
    /* many candidates share the first byte and differ in the second, as quotes do in JSON */
    const char *j = "{\"id\":\"x\",\"us\":1,\"usage\":null}";
    size_t n = strlen(j);
    cr_assert_eq(tg_memmem(j, n, "\"usage\":", 8), strstr(j, "\"usage\":"));
    cr_assert_null(tg_memmem(j, n, "\"usage\":{", 9));
    cr_assert_eq(tg_memmem(j, n, "}", 1), j + n - 1);
    cr_assert_null(tg_memmem(j, n, "!", 1));
    const char *a = "aab";
    cr_assert_eq(tg_memmem(a, 3, "ab", 2), a + 1);
}

/* The naive search, to check tg_memmem against. */
static const char *naive_memmem(const char *h, size_t hl, const char *n, size_t nl)
{
    for (size_t i = 0; i + nl <= hl; i++)
        if (memcmp(h + i, n, nl) == 0)
            return h + i;
    return NULL;
}

Test(tg_buf, memmem_agrees_with_a_naive_search_on_random_input)
{
    /* a small alphabet with common and rare bytes, so that matches, near-misses and the rarest
     * byte at every position of the needle all occur */
    static const char alpha[] = "\"u:sagex\n";
    char hay[64], needle[20];
    uint32_t x = 12345;
    for (int round = 0; round < 20000; round++) {
        x = x * 1103515245u + 12345u;
        size_t hl = (x >> 16) % sizeof(hay);
        x = x * 1103515245u + 12345u;
        size_t nl = 1 + (x >> 16) % sizeof(needle);
        for (size_t i = 0; i < hl; i++) {
            x = x * 1103515245u + 12345u;
            hay[i] = alpha[(x >> 16) % (sizeof(alpha) - 1)];
        }
        x = x * 1103515245u + 12345u;
        if (hl >= nl && (x >> 16) % 2) { /* half the time, a needle taken from the haystack */
            size_t from = (x >> 20) % (hl - nl + 1);
            memcpy(needle, hay + from, nl);
        } else {
            for (size_t i = 0; i < nl; i++) {
                x = x * 1103515245u + 12345u;
                needle[i] = alpha[(x >> 16) % (sizeof(alpha) - 1)];
            }
        }
        cr_assert_eq(tg_memmem(hay, hl, needle, nl), naive_memmem(hay, hl, needle, nl),
                     "round %d: hay %.*s needle %.*s", round, (int)hl, hay, (int)nl, needle);
    }
}

Test(tg_buf, memrmem_finds_last_occurrence)
{
    const char *h = "abcabcab";
    cr_assert_eq(tg_memrmem(h, 8, "ab", 2), h + 6);
    cr_assert_eq(tg_memrmem(h, 8, "abc", 3), h + 3);
    cr_assert_eq(tg_memrmem(h, 8, "abcabcab", 8), h);
    cr_assert_null(tg_memrmem(h, 8, "abd", 3));
    cr_assert_null(tg_memrmem(h, 8, "", 0));
    cr_assert_null(tg_memrmem(h, 1, "ab", 2));
    cr_assert_eq(tg_memrmem(h, 7, "ab", 2), h + 3);
}

Test(tg_buf, caseeq_ignores_ascii_case_only)
{
    cr_assert(tg_mem_caseeq("Authorization", 13, "authorization", 13));
    cr_assert(tg_mem_caseeq("X-API-KEY", 9, "x-api-key", 9));
    cr_assert_not(tg_mem_caseeq("x-api-key", 9, "x-api-ke", 8));
    cr_assert_not(tg_mem_caseeq("x-api-kez", 9, "x-api-key", 9));
    /* '@' and '`' are 0x20 apart like 'A' and 'a' but are not letters */
    cr_assert_not(tg_mem_caseeq("@", 1, "`", 1));
    cr_assert_not(tg_mem_caseeq("[", 1, "{", 1));
    cr_assert(tg_mem_caseeq("", 0, "", 0));
}

Test(tg_buf, mem_eq_compares_lengths_and_bytes)
{
    cr_assert(tg_mem_eq("abc", 3, "abc", 3));
    cr_assert_not(tg_mem_eq("abc", 3, "abd", 3));
    cr_assert_not(tg_mem_eq("abc", 3, "ab", 2));
    cr_assert(tg_mem_eq(NULL, 0, "", 0));
}

Test(tg_buf, append_i64_writes_decimal_like_printf)
{
    static const int64_t vs[] = {0, 7, -7, 10, 1234567890123LL, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        tg_buf_t b = TG_BUF_INIT(64);
        char want[32];
        snprintf(want, sizeof(want), "%lld", (long long)vs[i]);
        cr_assert_eq(tg_buf_append_i64(&b, vs[i]), 0);
        cr_assert(tg_mem_eq(b.base, b.len, want, strlen(want)), "%s: %.*s", want, (int)b.len,
                  b.base);
        tg_buf_dispose(&b);
    }
}

Test(tg_buf, append_fixed_writes_every_decimal)
{
    static const struct {
        int64_t v;
        int d;
        const char *want;
    } cases[] = {{0, 3, "0.000"},
                 {1500, 3, "1.500"},
                 {-1500, 3, "-1.500"},
                 {5, 3, "0.005"},
                 {-5, 3, "-0.005"},
                 {42, 0, "42"},
                 {3600000, 12, "0.000003600000"},
                 {INT64_MIN, 12, "-9223372.036854775808"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tg_buf_t b = TG_BUF_INIT(64);
        cr_assert_eq(tg_buf_append_fixed(&b, cases[i].v, cases[i].d), 0);
        cr_assert(tg_mem_eq(b.base, b.len, cases[i].want, strlen(cases[i].want)), "%s: %.*s",
                  cases[i].want, (int)b.len, b.base);
        tg_buf_dispose(&b);
    }
    tg_buf_t small = TG_BUF_INIT(3);
    cr_assert_eq(tg_buf_append_fixed(&small, 1500, 3), TG_ETOOBIG);
    cr_assert_eq(small.len, 0);
    tg_buf_dispose(&small);
}
