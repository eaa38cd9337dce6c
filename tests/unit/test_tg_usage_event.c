/* test_tg_usage_event.c: the usage event's one writer and one reader, shared by both planes. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_usage_event.h"

#define NOW_S 1732530000LL /* 2024-11-25T10:20:00Z */

static tg_usage_record_t sample(void)
{
    tg_usage_record_t r;
    memset(&r, 0, sizeof(r));
    memcpy(r.id, "0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80", 37);
    r.ts_ms = NOW_S * 1000 + 123;
    r.request_id = "req-1";
    r.request_id_len = 5;
    r.key_id = "6f1c2d3e-4a5b-4c6d-8e7f-901234567890";
    r.tenant_id = "1a2b3c4d-5e6f-4a1b-9c2d-3e4f5a6b7c8d";
    r.model = "say \"hi\"\n\xc3\xa9\\";
    r.model_len = strlen(r.model);
    r.provider = "openai";
    r.upstream_model = "gpt-4o-mini-2024-07-18";
    r.endpoint = "chat.completions";
    r.status = 200;
    r.streamed = true;
    r.prompt_tokens = 1200;
    r.completion_tokens = 350;
    r.cached_tokens = 1024;
    r.reasoning_tokens = 128;
    r.total_tokens = 1550;
    r.usage_source = "provider";
    r.cost_pusd = 1234567890123456LL;
    r.latency_ms = 812.5;
    r.ttfb_ms = -1;
    return r;
}

/* The line the writer wrote for r, read back and checked; its event in *e, its bytes in *line. */
static void round_trip(const tg_usage_record_t *r, tg_buf_t *line, char *scratch,
                       tg_usage_event_t *e)
{
    cr_assert_eq(tg_usage_event_append(line, r), 0);
    cr_assert_eq(line->base[line->len - 1], '\n');
    char msg[96] = "";
    cr_assert_eq(tg_usage_event_parse(line->base, line->len, NOW_S, scratch, e, msg, sizeof(msg)),
                 0, "%s: %.*s", msg, (int)line->len, line->base);
}

static bool text_is(const tg_usage_event_t *e, enum tg_usage_field f, const char *want)
{
    return e->v[f].type == TG_UV_STRING && e->v[f].n == strlen(want) &&
           memcmp(e->v[f].p, want, e->v[f].n) == 0;
}

Test(tg_usage_event, what_the_writer_writes_the_reader_reads_back)
{
    tg_usage_record_t r = sample();
    tg_buf_t line = TG_BUF_INIT(8192);
    char scratch[8192];
    tg_usage_event_t e;
    round_trip(&r, &line, scratch, &e);
    cr_assert_str_eq(e.id, r.id);
    cr_assert_str_eq(e.ts, "2024-11-25T10:20:00.123Z");
    cr_assert_str_eq(e.key_id, r.key_id);
    cr_assert_str_eq(e.tenant_id, r.tenant_id);
    cr_assert(text_is(&e, TG_UF_MODEL, r.model), "the escaped model decodes to what was written");
    cr_assert(text_is(&e, TG_UF_REQUEST_ID, "req-1"));
    cr_assert(text_is(&e, TG_UF_ENDPOINT, "chat.completions"));
    cr_assert_eq(e.v[TG_UF_STREAMED].type, TG_UV_TRUE);
    cr_assert_eq(e.v[TG_UF_TTFB_MS].type, TG_UV_NULL);
    cr_assert_eq(e.v[TG_UF_ERROR].type, TG_UV_NULL);
    cr_assert_str_eq(e.cost, "1234.567890123456");
    int64_t pusd;
    const tg_usage_val_t *c = &e.v[TG_UF_COST_USD];
    cr_assert_eq(tg_usage_parse_cost(c->p, c->n, &pusd), 0);
    cr_assert_eq(pusd, r.cost_pusd, "the cost is exact to the picodollar");
    cr_assert_eq(strtod(e.latency, NULL), 812.5);
    static const enum tg_usage_field tok[] = {TG_UF_PROMPT_TOKENS, TG_UF_COMPLETION_TOKENS,
                                              TG_UF_CACHED_TOKENS, TG_UF_REASONING_TOKENS,
                                              TG_UF_TOTAL_TOKENS};
    static const char *const want[] = {"1200", "350", "1024", "128", "1550"};
    for (size_t i = 0; i < 5; i++)
        cr_assert(tg_mem_eq(e.v[tok[i]].p, e.v[tok[i]].n, want[i], strlen(want[i])));
    tg_buf_dispose(&line);
}

Test(tg_usage_event, nulls_and_extremes_round_trip)
{
    tg_usage_record_t r = sample();
    r.key_id = NULL;
    r.tenant_id = NULL;
    r.request_id = NULL;
    r.usage_source = NULL;
    r.streamed = false;
    r.cost_pusd = 0;
    r.prompt_tokens = 1000000000000LL;
    r.latency_ms = 0.0004;
    r.ttfb_ms = 3.25;
    r.error = "upstream_timeout";
    tg_buf_t line = TG_BUF_INIT(8192);
    char scratch[8192];
    tg_usage_event_t e;
    round_trip(&r, &line, scratch, &e);
    cr_assert_eq(e.v[TG_UF_KEY_ID].type, TG_UV_NULL);
    cr_assert_eq(e.v[TG_UF_TENANT_ID].type, TG_UV_NULL);
    cr_assert_eq(e.v[TG_UF_REQUEST_ID].type, TG_UV_NULL);
    cr_assert(text_is(&e, TG_UF_USAGE_SOURCE, "none"));
    cr_assert_eq(e.v[TG_UF_STREAMED].type, TG_UV_FALSE);
    cr_assert_str_eq(e.cost, "0.000000000000");
    cr_assert_eq(strtod(e.ttfb, NULL), 3.25);
    cr_assert(text_is(&e, TG_UF_ERROR, "upstream_timeout"));
    tg_buf_dispose(&line);
}

/* An upstream may report any count (a buggy or hostile OpenAI-compatible server: 10^15 tokens,
 * negative ones) and a price times such a count any cost. The writer keeps every number inside
 * what the reader accepts, so the event is stored (at the bound, which a budget feels at once)
 * instead of being refused by the control plane and lost from the accounting. */
Test(tg_usage_event, out_of_range_counts_and_costs_are_written_within_what_the_reader_takes)
{
    tg_usage_record_t r = sample();
    r.prompt_tokens = INT64_MAX;
    r.completion_tokens = TG_USAGE_TOKENS_MAX + 1;
    r.cached_tokens = -5;
    r.reasoning_tokens = INT64_MIN;
    r.total_tokens = INT64_MAX;
    r.cost_pusd = INT64_MAX;
    r.status = 1234;
    tg_buf_t line = TG_BUF_INIT(8192);
    char scratch[8192];
    tg_usage_event_t e;
    round_trip(&r, &line, scratch, &e);
    char max[24];
    snprintf(max, sizeof(max), "%lld", TG_USAGE_TOKENS_MAX);
    cr_assert(tg_mem_eq(e.v[TG_UF_PROMPT_TOKENS].p, e.v[TG_UF_PROMPT_TOKENS].n, max, strlen(max)));
    cr_assert(tg_mem_eq(e.v[TG_UF_COMPLETION_TOKENS].p, e.v[TG_UF_COMPLETION_TOKENS].n, max,
                        strlen(max)));
    cr_assert(tg_mem_eq(e.v[TG_UF_CACHED_TOKENS].p, e.v[TG_UF_CACHED_TOKENS].n, "0", 1));
    cr_assert(tg_mem_eq(e.v[TG_UF_REASONING_TOKENS].p, e.v[TG_UF_REASONING_TOKENS].n, "0", 1));
    int64_t pusd;
    const tg_usage_val_t *c = &e.v[TG_UF_COST_USD];
    cr_assert_eq(tg_usage_parse_cost(c->p, c->n, &pusd), 0);
    cr_assert_eq(pusd, (int64_t)TG_USAGE_COST_MAX * 1000000000000LL);
    cr_assert(tg_mem_eq(e.v[TG_UF_STATUS].p, e.v[TG_UF_STATUS].n, "999", 3));
    tg_buf_dispose(&line);
    r = sample();
    r.cost_pusd = -1;
    round_trip(&r, &line, scratch, &e);
    cr_assert_str_eq(e.cost, "0.000000000000");
    tg_buf_dispose(&line);
}

Test(tg_usage_event, bad_events_are_refused_with_a_reason)
{
    static const char *const cases[][2] = {
        {"[1]", "not a JSON object"},
        {"{\"id\":", "not valid JSON"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\"} x", "text after the object"},
        {"{\"id\":\"a\",\"id\":\"b\"}", "duplicate field \"id\""},
        {"{\"id\":\"not-a-uuid\"}", "id is not a UUID"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"yesterday\"}", "ts is not"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2030-01-01T00:00:00Z\"}",
         "more than a day ahead"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"key_id\":\"k1\",\"status\":200}",
         "key_id is neither a UUID nor null"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":1000}",
         "status is not an integer"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"prompt_tokens\":-1}",
         "prompt_tokens is negative"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"total_tokens\":1000000000001}",
         "total_tokens is not an integer"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"streamed\":\"yes\"}",
         "streamed is not a boolean"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"cost_usd\":-0.5}",
         "cost_usd is negative"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"cost_usd\":1000001}",
         "cost_usd is above"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"latency_ms\":\"fast\"}",
         "latency_ms is not a number"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"model\":7}",
         "model is not a string"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"error\":\"a\\u0000b\"}",
         "error contains a NUL"},
    };
    char scratch[4096];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tg_usage_event_t e;
        char msg[96] = "";
        const char *line = cases[i][0];
        cr_assert_eq(tg_usage_event_parse(line, strlen(line), NOW_S, scratch, &e, msg, sizeof(msg)),
                     -1, "accepted: %s", line);
        cr_assert_not_null(strstr(msg, cases[i][1]), "\"%s\" for %s", msg, line);
    }
}

Test(tg_usage_event, overlong_text_is_refused)
{
    char line[2048];
    char model[600];
    memset(model, 'm', sizeof(model) - 1);
    model[sizeof(model) - 1] = '\0';
    snprintf(line, sizeof(line),
             "{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
             "\"status\":200,\"model\":\"%s\"}",
             model);
    tg_usage_event_t e;
    char msg[96] = "", scratch[2048];
    cr_assert_eq(tg_usage_event_parse(line, strlen(line), NOW_S, scratch, &e, msg, sizeof(msg)),
                 -1);
    cr_assert_not_null(strstr(msg, "model is longer than 512 bytes"), "%s", msg);
}

Test(tg_usage_event, scan_reads_the_fields_without_checking_them)
{
    /* the data plane reads its own spooled lines back with scan alone */
    const char line[] = "{\"id\":\"x\",\"key_id\":\"k\\u0031\",\"cost_usd\":0.5,\"other\":[{}]}\n";
    tg_usage_event_t e;
    char msg[96], key[64];
    cr_assert_eq(tg_usage_event_scan(line, sizeof(line) - 1, &e, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(tg_usage_event_str(&e, TG_UF_KEY_ID, key, sizeof(key)), 2);
    cr_assert_str_eq(key, "k1");
    cr_assert_eq(tg_usage_event_str(&e, TG_UF_COST_USD, key, sizeof(key)), -1, "not a string");
    cr_assert_eq(e.v[TG_UF_TS].type, TG_UV_ABSENT);
}

Test(tg_usage_event, writer_fails_past_max_and_leaves_the_buffer)
{
    tg_usage_record_t r = sample();
    tg_buf_t b = TG_BUF_INIT(64);
    cr_assert_eq(tg_buf_append(&b, "x", 1), 0);
    cr_assert_neq(tg_usage_event_append(&b, &r), 0);
    cr_assert_eq(b.len, 1);
    tg_buf_dispose(&b);
}

Test(tg_usage_event, uuid_check)
{
    cr_assert(tg_usage_is_uuid("0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80"));
    cr_assert(tg_usage_is_uuid("0B9E6A3C-8D1F-4C2E-9A57-3F1D2B6C7E80"));
    cr_assert_not(tg_usage_is_uuid("0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e8"));
    cr_assert_not(tg_usage_is_uuid("0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80x"));
    cr_assert_not(tg_usage_is_uuid("0b9e6a3c_8d1f-4c2e-9a57-3f1d2b6c7e80"));
    cr_assert_not(tg_usage_is_uuid("gb9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80"));
}

Test(tg_usage_event, cache_writes_and_the_unpriced_flag_round_trip)
{
    tg_usage_record_t r = sample();
    r.cache_write_tokens = 96;
    r.cache_write_1h_tokens = 32;
    r.unpriced = true;
    tg_buf_t line = TG_BUF_INIT(8192);
    char scratch[8192];
    tg_usage_event_t e;
    round_trip(&r, &line, scratch, &e);
    cr_assert_not_null(strstr(line.base, "\"cache_write_tokens\":96,\"cache_write_1h_tokens\":32,"
                                         "\"unpriced\":true}"),
                       "%.*s", (int)line.len, line.base);
    cr_assert_eq(e.v[TG_UF_UNPRICED].type, TG_UV_TRUE);
    cr_assert_eq(e.v[TG_UF_CACHE_WRITE_1H_TOKENS].n, 2);
    tg_buf_dispose(&line);

    static const char *const bad[][2] = {
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"unpriced\":\"yes\"}",
         "unpriced is not a boolean"},
        {"{\"id\":\"0b9e6a3c-8d1f-4c2e-9a57-3f1d2b6c7e80\",\"ts\":\"2024-11-25T10:00:00Z\","
         "\"status\":200,\"cache_write_1h_tokens\":-5}",
         "cache_write_1h_tokens is negative"},
    };
    for (size_t i = 0; i < 2; i++) {
        char msg[96] = "";
        cr_assert_eq(tg_usage_event_parse(bad[i][0], strlen(bad[i][0]), NOW_S, scratch, &e, msg,
                                          sizeof(msg)),
                     -1);
        cr_assert_not_null(strstr(msg, bad[i][1]), "%s", msg);
    }
}
