/* test_dp_usage.c: reading provider usage and writing it into usage events. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "tg_usage_event.h"
#include "usage.h"

static const char CHAT_BODY[] =
    "{\n"
    "  \"id\": \"chatcmpl-abc123\",\n"
    "  \"object\": \"chat.completion\",\n"
    "  \"created\": 1732530000,\n"
    "  \"model\": \"gpt-4o-mini-2024-07-18\",\n"
    "  \"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": "
    "\"Hello!\", \"refusal\": null}, \"logprobs\": null, \"finish_reason\": \"stop\"}],\n"
    "  \"usage\": {\n"
    "    \"prompt_tokens\": 1200,\n"
    "    \"completion_tokens\": 350,\n"
    "    \"total_tokens\": 1550,\n"
    "    \"prompt_tokens_details\": {\"cached_tokens\": 1024, \"audio_tokens\": 0},\n"
    "    \"completion_tokens_details\": {\"reasoning_tokens\": 128, \"audio_tokens\": 0}\n"
    "  },\n"
    "  \"system_fingerprint\": \"fp_0ba0d124f1\"\n"
    "}\n";

static bool scan(dp_usage_t *u, const char *body)
{
    memset(u, 0xab, sizeof(*u));
    return dp_usage_scan(u, body, strlen(body));
}

Test(dp_usage, scan_reads_chat_completion_usage_with_details)
{
    dp_usage_t u;
    cr_assert(scan(&u, CHAT_BODY));
    cr_assert(u.present);
    cr_assert_eq(u.prompt, 1200);
    cr_assert_eq(u.completion, 350);
    cr_assert_eq(u.total, 1550);
    cr_assert_eq(u.cached, 1024);
    cr_assert_eq(u.reasoning, 128);
}

Test(dp_usage, scan_ignores_escaped_usage_text_in_message_content)
{
    /* the content mentions "usage": {...} but, escaped in a string, it is not the member */
    const char body[] =
        "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"the \\\"usage\\\": "
        "{\\\"prompt_tokens\\\": 999999} field\"}}],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}";
    dp_usage_t u;
    cr_assert(scan(&u, body));
    cr_assert_eq(u.prompt, 12);
    cr_assert_eq(u.completion, 3);
    cr_assert_eq(u.total, 15);
}

Test(dp_usage, scan_ignores_escaped_usage_text_after_the_real_usage)
{
    const char body[] = "{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1},"
                        "\"choices\":[{\"text\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":5}\"}]}";
    dp_usage_t u;
    cr_assert(scan(&u, body));
    cr_assert_eq(u.prompt, 7);
    cr_assert_eq(u.completion, 1);
    cr_assert_eq(u.total, 8);
}

Test(dp_usage, scan_falls_back_when_usage_is_a_string_value)
{
    /* the last "usage" token is a value, not a key: the whole body is parsed instead */
    const char body[] = "{\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2},"
                        "\"choices\":[{\"text\":\"usage\"}],\"note\":\"usage\"}";
    dp_usage_t u;
    cr_assert(scan(&u, body));
    cr_assert_eq(u.prompt, 4);
    cr_assert_eq(u.completion, 2);
}

Test(dp_usage, scan_of_body_without_usage_finds_nothing)
{
    const char body[] = "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"message\":"
                        "{\"content\":\"hi\"}}]}";
    dp_usage_t u;
    cr_assert_not(scan(&u, body));
}

Test(dp_usage, scan_of_null_usage_or_garbage_finds_nothing)
{
    dp_usage_t u;
    cr_assert_not(scan(&u, "{\"usage\":null}"));
    cr_assert_not(scan(&u, "{\"usage\":{\"prompt_tokens\":1"));
    cr_assert_not(scan(&u, "not json at all"));
    cr_assert_not(scan(&u, ""));
}

Test(dp_usage, scan_reads_embeddings_usage)
{
    const char body[] = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
                        "\"embedding\":[0.1,-0.2]}],\"model\":\"text-embedding-3-small\","
                        "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";
    dp_usage_t u;
    cr_assert(scan(&u, body));
    cr_assert_eq(u.prompt, 8);
    cr_assert_eq(u.completion, 0);
    cr_assert_eq(u.total, 8);
    cr_assert_eq(u.cached, 0);
}

Test(dp_usage, from_json_treats_missing_negative_and_non_integer_counts_as_zero)
{
    json_t *o = json_loads("{\"prompt_tokens\":-5,\"completion_tokens\":\"7\","
                           "\"prompt_tokens_details\":null}",
                           0, NULL);
    dp_usage_t u;
    cr_assert(dp_usage_from_json(&u, o));
    cr_assert_eq(u.prompt, 0);
    cr_assert_eq(u.completion, 0);
    cr_assert_eq(u.total, 0);
    cr_assert_eq(u.cached, 0);
    cr_assert(u.present);
    json_decref(o);
    cr_assert_not(dp_usage_from_json(&u, NULL));
}

Test(dp_usage, from_json_total_saturates_instead_of_overflowing)
{
    json_t *o = json_loads("{\"prompt_tokens\":9223372036854775807,"
                           "\"completion_tokens\":9223372036854775807}",
                           0, NULL);
    dp_usage_t u;
    cr_assert(dp_usage_from_json(&u, o));
    cr_assert_eq(u.total, INT64_MAX);
    json_decref(o);
}

static tg_usage_record_t sample_record(void)
{
    tg_usage_record_t r;
    memset(&r, 0, sizeof(r));
    memcpy(r.id, "0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80", 37);
    r.ts_ms = 1732530000123;
    r.request_id = "req-1";
    r.request_id_len = 5;
    r.key_id = "k1";
    r.tenant_id = "t1";
    r.model = "gpt-4o-mini";
    r.model_len = 11;
    r.provider = "openai";
    r.upstream_model = "gpt-4o-mini-2024-07-18";
    r.endpoint = "chat.completions";
    r.status = 200;
    r.streamed = true;
    dp_usage_t u = {.prompt = 1200,
                    .completion = 350,
                    .cached = 1024,
                    .reasoning = 128,
                    .total = 1550,
                    .present = true};
    dp_usage_to_event(&r, &u);
    r.usage_source = "provider";
    r.cost_pusd = 3600000;
    r.latency_ms = 812.5;
    r.ttfb_ms = 95.25;
    r.error = NULL;
    return r;
}

Test(dp_usage, every_count_goes_into_its_event_field)
{
    dp_usage_t u = {.prompt = 1,
                    .completion = 2,
                    .cached = 3,
                    .reasoning = 4,
                    .total = 5,
                    .cache_write = 6,
                    .cache_write_1h = 7,
                    .present = true};
    tg_usage_record_t e;
    memset(&e, 0, sizeof(e));
    dp_usage_to_event(&e, &u);
    cr_assert_eq(e.prompt_tokens, 1);
    cr_assert_eq(e.completion_tokens, 2);
    cr_assert_eq(e.cached_tokens, 3);
    cr_assert_eq(e.reasoning_tokens, 4);
    cr_assert_eq(e.total_tokens, 5);
    cr_assert_eq(e.cache_write_tokens, 6);
    cr_assert_eq(e.cache_write_1h_tokens, 7);
}

/* Appends the record and parses the line back. */
static json_t *record_json(const tg_usage_record_t *r, tg_buf_t *out)
{
    json_error_t jerr;
    cr_assert_eq(tg_usage_event_append(out, r), 0);
    cr_assert_gt(out->len, 0);
    cr_assert_eq(out->base[out->len - 1], '\n', "record does not end in a newline");
    cr_assert_null(memchr(out->base, '\n', out->len - 1), "record spans lines");
    json_t *j = json_loadb(out->base, out->len, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(j, "record is not JSON: %s: %.*s", jerr.text, (int)out->len, out->base);
    return j;
}

Test(dp_usage, record_is_one_valid_json_line_with_all_fields)
{
    tg_usage_record_t r = sample_record();
    tg_buf_t out = TG_BUF_INIT(8192);
    json_t *j = record_json(&r, &out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")),
                     "0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80");
    cr_assert_str_eq(json_string_value(json_object_get(j, "ts")), "2024-11-25T10:20:00.123Z");
    cr_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "req-1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "key_id")), "k1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "tenant_id")), "t1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "model")), "gpt-4o-mini");
    cr_assert_str_eq(json_string_value(json_object_get(j, "provider")), "openai");
    cr_assert_str_eq(json_string_value(json_object_get(j, "upstream_model")),
                     "gpt-4o-mini-2024-07-18");
    cr_assert_str_eq(json_string_value(json_object_get(j, "endpoint")), "chat.completions");
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 200);
    cr_assert(json_is_true(json_object_get(j, "streamed")));
    cr_assert_eq(json_integer_value(json_object_get(j, "prompt_tokens")), 1200);
    cr_assert_eq(json_integer_value(json_object_get(j, "completion_tokens")), 350);
    cr_assert_eq(json_integer_value(json_object_get(j, "cached_tokens")), 1024);
    cr_assert_eq(json_integer_value(json_object_get(j, "reasoning_tokens")), 128);
    cr_assert_eq(json_integer_value(json_object_get(j, "total_tokens")), 1550);
    cr_assert_str_eq(json_string_value(json_object_get(j, "usage_source")), "provider");
    cr_assert_float_eq(json_real_value(json_object_get(j, "latency_ms")), 812.5, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(j, "ttfb_ms")), 95.25, 1e-9);
    cr_assert(json_is_null(json_object_get(j, "error")));
    json_decref(j);
    tg_buf_dispose(&out);
}

Test(dp_usage, record_cost_is_an_exact_decimal_of_picodollars)
{
    tg_usage_record_t r = sample_record();
    tg_buf_t out = TG_BUF_INIT(8192);
    json_t *j = record_json(&r, &out);
    cr_assert_not_null(tg_memmem(out.base, out.len, "\"cost_usd\":0.000003600000,", 26), "%.*s",
                       (int)out.len, out.base);
    json_decref(j);
    tg_buf_reset(&out);
    r.cost_pusd = 1234567890123456LL; /* $1234.567890123456 */
    j = record_json(&r, &out);
    cr_assert_not_null(tg_memmem(out.base, out.len, "\"cost_usd\":1234.567890123456,", 29), "%.*s",
                       (int)out.len, out.base);
    json_decref(j);
    tg_buf_reset(&out);
    r.cost_pusd = 0;
    j = record_json(&r, &out);
    cr_assert_not_null(tg_memmem(out.base, out.len, "\"cost_usd\":0.000000000000,", 26));
    json_decref(j);
    tg_buf_dispose(&out);
}

Test(dp_usage, record_ttfb_is_null_when_no_byte_came_back)
{
    tg_usage_record_t r = sample_record();
    r.ttfb_ms = -1;
    r.error = "upstream_unreachable";
    r.status = 502;
    r.usage_source = "none";
    tg_buf_t out = TG_BUF_INIT(8192);
    json_t *j = record_json(&r, &out);
    cr_assert(json_is_null(json_object_get(j, "ttfb_ms")));
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "upstream_unreachable");
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 502);
    json_decref(j);
    tg_buf_dispose(&out);
}

Test(dp_usage, record_escapes_strings)
{
    tg_usage_record_t r = sample_record();
    const char model[] = "we\"ird\\mo\ndel\x01";
    r.model = model;
    r.model_len = sizeof(model) - 1;
    r.key_id = "key\"1";
    r.request_id = "a\tb";
    r.request_id_len = 3;
    tg_buf_t out = TG_BUF_INIT(8192);
    json_t *j = record_json(&r, &out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "model")), model);
    cr_assert_str_eq(json_string_value(json_object_get(j, "key_id")), "key\"1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "a\tb");
    json_decref(j);
    tg_buf_dispose(&out);
}

Test(dp_usage, record_missing_strings_are_null)
{
    tg_usage_record_t r = sample_record();
    r.key_id = NULL;
    r.tenant_id = NULL;
    r.provider = NULL;
    r.upstream_model = NULL;
    r.usage_source = NULL;
    tg_buf_t out = TG_BUF_INIT(8192);
    json_t *j = record_json(&r, &out);
    cr_assert(json_is_null(json_object_get(j, "key_id")));
    cr_assert(json_is_null(json_object_get(j, "tenant_id")));
    cr_assert(json_is_null(json_object_get(j, "provider")));
    cr_assert(json_is_null(json_object_get(j, "upstream_model")));
    cr_assert_str_eq(json_string_value(json_object_get(j, "usage_source")), "none");
    json_decref(j);
    tg_buf_dispose(&out);
}

Test(dp_usage, record_appends_after_existing_lines)
{
    tg_usage_record_t r = sample_record();
    tg_buf_t out = TG_BUF_INIT(8192);
    cr_assert_eq(tg_usage_event_append(&out, &r), 0);
    size_t first = out.len;
    cr_assert_eq(tg_usage_event_append(&out, &r), 0);
    cr_assert_eq(out.len, 2 * first);
    cr_assert_eq(memcmp(out.base, out.base + first, first), 0);
    tg_buf_dispose(&out);
}

Test(dp_usage, record_past_max_fails_and_leaves_buffer_unchanged)
{
    tg_usage_record_t r = sample_record();
    tg_buf_t out = TG_BUF_INIT(300);
    cr_assert_eq(tg_buf_append(&out, "prev\n", 5), 0);
    cr_assert_eq(tg_usage_event_append(&out, &r), TG_ETOOBIG);
    cr_assert_eq(out.len, 5);
    cr_assert_eq(memcmp(out.base, "prev\n", 5), 0);
    tg_buf_dispose(&out);
}

static int64_t cost_of(const char *s)
{
    int64_t v = -42;
    cr_assert_eq(tg_usage_parse_cost(s, strlen(s), &v), 0, "\"%s\" refused", s);
    return v;
}

Test(dp_usage, parse_cost_reads_decimals_exactly_as_picodollars)
{
    cr_assert_eq(cost_of("0.000020000000"), 20000000);
    cr_assert_eq(cost_of("0.000000000001"), 1);
    cr_assert_eq(cost_of("1234.567890123456"), 1234567890123456LL);
    cr_assert_eq(cost_of("0"), 0);
    cr_assert_eq(cost_of("7"), 7000000000000LL);
    cr_assert_eq(cost_of("0.1"), 100000000000LL);
    /* 0.1 + 0.2 in doubles is 0.30000000000000004; here it is what was written */
    cr_assert_eq(cost_of("0.100000000000") + cost_of("0.200000000000"), cost_of("0.3"));
    cr_assert_eq(cost_of("9223360.999999999999"), 9223360999999999999LL);
}

Test(dp_usage, parse_cost_refuses_what_is_not_an_exact_non_negative_decimal)
{
    const char *bad[] = {
        "",   "-1", "1.", ".5",          "1e-6", "0.0000000000001",       "1.2.3", "0x10",
        " 1", "1 ", "+1", "99999999999", "NaN",  "0.00000000000000000001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = -42;
        cr_assert_eq(tg_usage_parse_cost(bad[i], strlen(bad[i]), &v), TG_EINVAL, "\"%s\" taken",
                     bad[i]);
        cr_assert_eq(v, -42, "\"%s\" changed the output", bad[i]);
    }
}

Test(dp_usage, line_parse_reads_back_what_record_append_wrote)
{
    tg_usage_record_t r = sample_record();
    r.cost_pusd = 1234567890123456LL;
    r.model = "say \\\"cost_usd\\\":999,";
    r.model_len = strlen(r.model);
    tg_buf_t out = TG_BUF_INIT(8192);
    cr_assert_eq(tg_usage_event_append(&out, &r), 0);
    dp_usage_line_t l;
    cr_assert_eq(dp_usage_line_parse(out.base, out.len, &l), 0);
    cr_assert_str_eq(l.id, "0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80");
    cr_assert_str_eq(l.key_id, "k1");
    cr_assert_str_eq(l.tenant_id, "t1");
    cr_assert_eq(l.cost_pusd, 1234567890123456LL);
    tg_buf_reset(&out);
    r.key_id = NULL;
    r.tenant_id = NULL;
    r.cost_pusd = 0;
    cr_assert_eq(tg_usage_event_append(&out, &r), 0);
    cr_assert_eq(dp_usage_line_parse(out.base, out.len - 1, &l), 0, "without its newline");
    cr_assert_str_eq(l.key_id, "");
    cr_assert_str_eq(l.tenant_id, "");
    cr_assert_eq(l.cost_pusd, 0);
    tg_buf_dispose(&out);
}

Test(dp_usage, line_parse_refuses_a_torn_or_foreign_line)
{
    dp_usage_line_t l;
    const char *bad[] = {
        "{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024",
        "[1,2]",
        "{\"id\":\"short\",\"cost_usd\":0.1}",
        "{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"cost_usd\":-0.1}",
        "{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"cost_usd\":1e3}",
        "{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\"}",
        "{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"key_id\":7,\"cost_usd\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(dp_usage_line_parse(bad[i], strlen(bad[i]), &l), TG_EINVAL, "%s", bad[i]);
}

Test(dp_usage, scan_takes_the_top_level_usage_not_a_nested_one)
{
    /* a nested object after the real usage has its own "usage" key */
    const char body[] = "{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1},"
                        "\"choices\":[{\"message\":{\"metadata\":{\"usage\":"
                        "{\"prompt_tokens\":999}}}}]}";
    dp_usage_t u;
    cr_assert(scan(&u, body));
    cr_assert_eq(u.prompt, 7);
    cr_assert_eq(u.total, 8);
}

Test(dp_usage, scan_reads_escaped_keys_and_the_last_duplicate)
{
    /* an upstream's duplicate keys are not ours to refuse: the last one counts, as in jansson */
    const char body[] =
        "{\"usage\":{\"prompt_tokens\":1},\"us\\u0061ge\":{\"prompt_\\u0074okens\":4,"
        "\"prompt_tokens_details\":{\"cached_tokens\":2,\"cached_tokens\":3}}}";
    dp_usage_t u;
    cr_assert(scan(&u, body));
    cr_assert_eq(u.prompt, 4);
    cr_assert_eq(u.cached, 3);
}

Test(dp_usage, from_span_matches_from_json)
{
    static const char *const objs[] = {
        "{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":9}",
        "{\"prompt_tokens\":-5,\"completion_tokens\":2.5,\"total_tokens\":\"9\"}",
        "{\"prompt_tokens_details\":{\"cached_tokens\":4},\"completion_tokens_details\":"
        "{\"reasoning_tokens\":6},\"completion_tokens\":8}",
        "{\"prompt_tokens_details\":null,\"completion_tokens_details\":[1]}",
        "{\"prompt_tokens\":9223372036854775807,\"completion_tokens\":1}",
        "{}",
    };
    for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
        dp_usage_t a, b;
        json_t *j = json_loads(objs[i], 0, NULL);
        cr_assert(dp_usage_from_json(&a, j));
        cr_assert(dp_usage_from_span(&b, objs[i], strlen(objs[i])));
        cr_assert(memcmp(&a, &b, sizeof(a)) == 0, "%s", objs[i]);
        json_decref(j);
    }
}

Test(dp_usage, record_numbers_read_as_printf_wrote_them)
{
    /* the record is formatted without printf; each number must read back as %.3f, %d and the
     * picodollar decimal wrote it (ties of %.3f may round the last digit the other way); the
     * numbers are within what the reader takes (the writer clamps others: test_tg_usage_event) */
    static const double ms[] = {0, 0.0004, 0.0015, 1, 12.3456, 999.9995, 1234567.891, 0.1 + 0.2};
    static const int64_t costs[] = {0, 1, 999999999999, 1000000000000, 123456789012345678};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        for (size_t c = 0; c < sizeof(costs) / sizeof(costs[0]); c++) {
            tg_usage_record_t r = {.id = "00000000-0000-4000-8000-000000000000",
                                   .ts_ms = 1764000000123LL + (int64_t)i,
                                   .status = (int)(i * 137),
                                   .prompt_tokens = TG_USAGE_TOKENS_MAX,
                                   .completion_tokens = (int64_t)i,
                                   .cost_pusd = costs[c],
                                   .latency_ms = ms[i],
                                   .ttfb_ms = ms[i] / 3};
            tg_buf_t b = TG_BUF_INIT(4096);
            cr_assert_eq(tg_usage_event_append(&b, &r), 0);
            json_t *j = json_loadb(b.base, b.len - 1, 0, NULL);
            cr_assert_not_null(j);
            char want[64];
            snprintf(want, sizeof(want), "\"latency_ms\":%.3f,", ms[i]);
            cr_assert_not_null(tg_memmem(b.base, b.len, want, strlen(want)), "%s in %.*s", want,
                               (int)b.len, b.base);
            snprintf(want, sizeof(want), "\"ttfb_ms\":%.3f,", ms[i] / 3);
            cr_assert_not_null(tg_memmem(b.base, b.len, want, strlen(want)), "%s", want);
            snprintf(want, sizeof(want), "\"cost_usd\":%lld.%012lld,",
                     (long long)(costs[c] / 1000000000000LL),
                     (long long)(costs[c] % 1000000000000LL));
            cr_assert_not_null(tg_memmem(b.base, b.len, want, strlen(want)), "%s", want);
            snprintf(want, sizeof(want), "\"status\":%d,", r.status);
            cr_assert_not_null(tg_memmem(b.base, b.len, want, strlen(want)), "%s", want);
            cr_assert_eq(json_integer_value(json_object_get(j, "prompt_tokens")),
                         TG_USAGE_TOKENS_MAX);
            char ts[32];
            snprintf(ts, sizeof(ts), "\"ts\":\"2025-11-24T16:00:00.%03dZ\"", 123 + (int)i);
            cr_assert_not_null(tg_memmem(b.base, b.len, ts, strlen(ts)), "%s in %.*s", ts,
                               (int)b.len, b.base);
            json_decref(j);
            tg_buf_dispose(&b);
        }
    }
}
