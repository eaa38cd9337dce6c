/* test_dp_ledger.c: budgets in the ledger: what an acknowledgement changes, and that no
 * admission running beside it ever sees spend drop. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ledger.h"
#include "tg_snap.h"
#include "tg_time.h"

#define PUSD 1000000000000LL /* one dollar */

static void today(char out[11])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* One tenant t1 with key k1 holding a daily budget of limit_usd, spent_usd spent. */
static tg_snap_t *snap_with_budget(double limit_usd, double spent_usd)
{
    char day[11], doc[2048];
    today(day);
    snprintf(
        doc, sizeof(doc),
        "{\"version\":1,\"tenants\":[{\"id\":\"t1\"}],"
        "\"providers\":[{\"id\":\"p\",\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\"}],"
        "\"routes\":[{\"alias\":\"m\",\"targets\":[{\"provider\":\"p\",\"model\":\"m\"}]}],"
        "\"keys\":[{\"id\":\"k1\",\"tenant\":\"t1\",\"sha256\":"
        "\"%064d\",\"models\":[\"m\"]}],"
        "\"budgets\":[{\"id\":\"b1\",\"tenant\":\"t1\",\"key\":\"k1\",\"period\":\"daily\","
        "\"limit_usd\":%.6f,\"spent_usd\":%.6f,\"period_start\":\"%s\"}],"
        "\"spend_as_of\":1}",
        0, limit_usd, spent_usd, day);
    tg_snap_t *s = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(tg_snap_parse(doc, strlen(doc), &s, &err), 0, "%s", err.msg);
    dp_ledger_bind(s);
    return s;
}

/* The answer of POST /dp/v1/usage with k1's daily spend. */
static json_t *answer(int64_t spent_pusd)
{
    char day[11];
    today(day);
    return json_pack("{s:i,s:I,s:[{s:s,s:s,s:s,s:s,s:s,s:f}]}", "live_dataplanes", 1, "spend_as_of",
                     (json_int_t)1, "spend", "budget", "b1", "tenant", "t1", "key", "k1", "period",
                     "daily", "period_start", day, "spent_usd", (double)spent_pusd / (double)PUSD);
}

/* Whether a request of worst case `worst` is admitted; released at once if it is. */
static bool admits(const tg_key_t *k, int64_t worst)
{
    dp_admit_t a;
    tg_err_t err;
    char ra[32];
    tg_err_clear(&err);
    dp_worst_t w = {worst, 1, 1, false};
    if (dp_ledger_admit(k, &w, 0, &a, &err, ra, sizeof(ra)) != 0)
        return false;
    dp_ledger_finish(k, &a, 0, 0);
    return true;
}

Test(dp_ledger, ack_moves_cost_from_unacknowledged_into_spend)
{
    tg_snap_t *s = snap_with_budget(1.0, 0.25);
    const tg_key_t *k = &s->keys[0];
    dp_admit_t a;
    tg_err_t err;
    char ra[32];
    dp_worst_t w = {PUSD / 10, 1, 1, false};
    cr_assert_eq(dp_ledger_admit(k, &w, 0, &a, &err, ra, sizeof(ra)), 0);
    dp_ledger_finish(k, &a, PUSD / 4, 0); /* 0.25 spent + 0.25 unacknowledged */
    cr_assert(admits(k, PUSD / 2));
    cr_assert_not(admits(k, PUSD / 2 + 1));
    dp_ledger_event_t ev = {"k1", "t1", PUSD / 4};
    json_t *ans = answer(PUSD / 2);
    dp_ledger_ack(&ev, 1, ans);
    json_decref(ans);
    cr_assert(admits(k, PUSD / 2)); /* 0.50 spent, nothing unacknowledged */
    cr_assert_not(admits(k, PUSD / 2 + 1));
    /* an older, smaller figure (a snapshot read before the batch committed) changes nothing */
    ans = answer(PUSD / 4);
    dp_ledger_ack(NULL, 0, ans);
    json_decref(ans);
    cr_assert_not(admits(k, PUSD / 2 + 1));
    tg_snap_t *old = snap_with_budget(1.0, 0.25);
    cr_assert_not(admits(k, PUSD / 2 + 1));
    tg_snap_unref(old);
    tg_snap_unref(s);
    dp_ledger_shutdown();
}

/* ---- an acknowledgement beside admissions ---- */

static struct {
    const tg_key_t *k;
    _Atomic int64_t floor; /* spend + unacknowledged is at least this, from when it is set */
    atomic_bool done;
    atomic_long violations, probes;
} race;

#define ROUND_COST (PUSD / 1000)

static void *acker(void *arg)
{
    (void)arg;
    int64_t spent = 0;
    for (int i = 0; i < 20000; i++) {
        dp_admit_t a = {.held = false}; /* a request that held nothing: only its cost counts */
        dp_ledger_finish(race.k, &a, ROUND_COST, 0);
        spent += ROUND_COST;
        atomic_store(&race.floor, spent);
        dp_ledger_event_t ev = {"k1", "t1", ROUND_COST};
        json_t *ans = answer(spent);
        dp_ledger_ack(&ev, 1, ans);
        json_decref(ans);
    }
    atomic_store(&race.done, true);
    return NULL;
}

static void *prober(void *arg)
{
    int64_t limit = *(const int64_t *)arg;
    while (!atomic_load(&race.done)) {
        int64_t f = atomic_load(&race.floor);
        /* admitted only if spend + unacknowledged < f: never, unless the ack lets it drop */
        if (f > 0 && admits(race.k, limit - f + 1))
            atomic_fetch_add(&race.violations, 1);
        atomic_fetch_add(&race.probes, 1);
    }
    return NULL;
}

Test(dp_ledger, spend_never_drops_while_an_ack_is_applied)
{
    tg_snap_t *s = snap_with_budget(1000.0, 0);
    int64_t limit = 1000 * PUSD;
    race.k = &s->keys[0];
    pthread_t a, p[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&p[i], NULL, prober, &limit);
    pthread_create(&a, NULL, acker, NULL);
    pthread_join(a, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(p[i], NULL);
    cr_log_info("%ld probes", atomic_load(&race.probes));
    cr_assert_eq(atomic_load(&race.violations), 0, "%ld admissions saw spend drop",
                 atomic_load(&race.violations));
    tg_snap_unref(s);
    dp_ledger_shutdown();
}

/* ---- refusals ---- */

static const char *refusal(const tg_key_t *k, const dp_worst_t *w, tg_err_t *err)
{
    dp_admit_t a;
    char ra[32];
    tg_err_clear(err);
    cr_assert_eq(dp_ledger_admit(k, w, 0, &a, err, ra, sizeof(ra)), TG_ERATE);
    cr_assert_eq(err->status, 429);
    cr_assert_str_eq(err->type, "insufficient_quota");
    return err->msg;
}

Test(dp_ledger, a_request_too_dear_for_a_fresh_budget_says_why_and_what_helps)
{
    tg_snap_t *s = snap_with_budget(0.01, 0);
    tg_err_t err;
    /* no max_tokens: the default completion makes the reservation */
    dp_worst_t w = {PUSD / 40, 120, DP_WORST_COMPLETION_TOKENS, true};
    const char *m = refusal(&s->keys[0], &w, &err);
    cr_assert(strstr(m,
                     "this request may cost up to $0.025000 (120 prompt tokens, one per body "
                     "byte, plus 4096 completion tokens: the default without max_tokens), "
                     "more than the $0.010000 left of the API key daily budget of $0.010000 "
                     "(nothing spent yet); a smaller max_tokens reserves less; it resets at ") == m,
              "%s", m);
    cr_assert_null(strstr(m, "used up"), "%s", m);
    w.default_completion = false;
    w.completion_tokens = 500;
    m = refusal(&s->keys[0], &w, &err);
    cr_assert_not_null(strstr(m, "plus max_tokens 500)"), "%s", m);
    tg_snap_unref(s);
    dp_ledger_shutdown();
}

Test(dp_ledger, a_used_up_budget_says_so_and_the_message_fits_with_large_figures)
{
    tg_snap_t *s = snap_with_budget(999999.0, 999999.0);
    tg_err_t err;
    dp_worst_t w = {PUSD, 1, 1, false};
    const char *m = refusal(&s->keys[0], &w, &err);
    cr_assert(strstr(m, "the API key daily budget of $999999.000000 is used up: $999999.000000 "
                        "spent; it resets at ") == m,
              "%s", m);
    tg_snap_unref(s);
    dp_ledger_shutdown(); /* a fresh ledger: the larger figure would win */
    /* the longest figures still end in the reset time: nothing cut off */
    s = snap_with_budget(999999.0, 999998.0);
    dp_worst_t big = {999999 * PUSD, 4000000000LL, DP_WORST_COMPLETION_TOKENS, true};
    dp_admit_t a;
    char ra[32];
    dp_worst_t small = {PUSD / 2, 1, 1, false};
    cr_assert_eq(dp_ledger_admit(&s->keys[0], &small, 0, &a, &err, ra, sizeof(ra)), 0);
    m = refusal(&s->keys[0], &big, &err);
    cr_assert_not_null(strstr(m, "held by requests in flight)"), "%s", m);
    cr_assert(strlen(m) > 20 && strcmp(m + strlen(m) - 5, ".000Z") == 0, "cut off: %s", m);
    dp_ledger_finish(&s->keys[0], &a, 0, 0);
    tg_snap_unref(s);
    dp_ledger_shutdown();
}

/* The snapshot is shared by every loop without locks: binding reads it and writes nothing. */
Test(dp_ledger, binding_leaves_the_snapshot_as_parsed_and_budgets_still_apply)
{
    char day[11], doc[2048];
    today(day);
    snprintf(
        doc, sizeof(doc),
        "{\"version\":1,\"tenants\":[{\"id\":\"t1\"}],"
        "\"providers\":[{\"id\":\"p\",\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\"}],"
        "\"routes\":[{\"alias\":\"m\",\"targets\":[{\"provider\":\"p\",\"model\":\"m\"}]}],"
        "\"keys\":[{\"id\":\"k1\",\"tenant\":\"t1\",\"sha256\":"
        "\"%064d\",\"models\":[\"m\"]}],"
        "\"budgets\":[{\"id\":\"b1\",\"tenant\":\"t1\",\"key\":\"k1\",\"period\":\"daily\","
        "\"limit_usd\":1.0,\"spent_usd\":0.5,\"period_start\":\"%s\"}],"
        "\"spend_as_of\":1}",
        0, day);
    tg_snap_t *s = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(tg_snap_parse(doc, strlen(doc), &s, &err), 0, "%s", err.msg);
    tg_key_t key_before = s->keys[0];
    tg_tenant_t tenant_before = s->tenants[0];
    dp_ledger_bind(s);
    cr_assert_eq(memcmp(&key_before, &s->keys[0], sizeof(key_before)), 0);
    cr_assert_eq(memcmp(&tenant_before, &s->tenants[0], sizeof(tenant_before)), 0);
    /* and the ledger still finds the key's entry: 0.5 left admits 0.4 and refuses 0.6 */
    cr_assert(admits(&s->keys[0], PUSD * 4 / 10));
    cr_assert_not(admits(&s->keys[0], PUSD * 6 / 10));
    tg_snap_unref(s);
    dp_ledger_shutdown();
}

/* The x-ratelimit-* lines and the retry-after of a refusal, byte for byte: 3 requests and 600
 * tokens a minute on the key, one data plane. */
Test(dp_ledger, rate_limit_headers_and_retry_after_read_as_openai_writes_them)
{
    const char *doc =
        "{\"version\":1,\"tenants\":[{\"id\":\"t-rl\"}],"
        "\"providers\":[{\"id\":\"p\",\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\"}],"
        "\"routes\":[{\"alias\":\"m\",\"targets\":[{\"provider\":\"p\",\"model\":\"m\"}]}],"
        "\"keys\":[{\"id\":\"k-rl\",\"tenant\":\"t-rl\",\"sha256\":"
        "\"1111111111111111111111111111111111111111111111111111111111111111\","
        "\"models\":[\"m\"],\"rpm_limit\":3,\"tpm_limit\":600}]}";
    tg_snap_t *s = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(tg_snap_parse(doc, strlen(doc), &s, &err), 0, "%s", err.msg);
    dp_ledger_bind(s);
    const tg_key_t *k = &s->keys[0];
    dp_worst_t w = {0, 100, 0, false};
    dp_admit_t a;
    char ra[32], h[384];
    /* a full bucket: one request and 100 tokens taken; 1 request refills in 20 s, 100 tokens
     * in 10 s (the reset is when the bucket is full again) */
    cr_assert_eq(dp_ledger_admit(k, &w, 100, &a, &err, ra, sizeof(ra)), 0, "%s", err.msg);
    dp_admit_headers(&a, h, sizeof(h));
    cr_assert_str_eq(h, "x-ratelimit-limit-requests: 3\r\n"
                                "x-ratelimit-remaining-requests: 2\r\n"
                                "x-ratelimit-reset-requests: 20s\r\n"
                                "x-ratelimit-limit-tokens: 600\r\n"
                                "x-ratelimit-remaining-tokens: 500\r\n"
                                "x-ratelimit-reset-tokens: 10s\r\n");
    cr_assert_str_eq(ra, "");
    dp_ledger_finish(k, &a, 0, 100);
    /* two more requests empty the request bucket: 60 s to refill (a few microseconds less when
     * the clock moved between the calls, written 60s; exactly 60 s is written 1m0s) */
    cr_assert_eq(dp_ledger_admit(k, &w, 100, &a, &err, ra, sizeof(ra)), 0, "%s", err.msg);
    dp_ledger_finish(k, &a, 0, 100);
    cr_assert_eq(dp_ledger_admit(k, &w, 100, &a, &err, ra, sizeof(ra)), 0, "%s", err.msg);
    dp_ledger_finish(k, &a, 0, 100);
    /* the fourth is refused: a whole request refills in 20 s */
    cr_assert_neq(dp_ledger_admit(k, &w, 100, &a, &err, ra, sizeof(ra)), 0);
    cr_assert_str_eq(ra, "20");
    cr_assert(strstr(err.msg, "3 requests per minute; retry in 20 s"), "%s", err.msg);
    const char *h60 = "x-ratelimit-limit-requests: 3\r\n"
                      "x-ratelimit-remaining-requests: 0\r\n"
                      "x-ratelimit-reset-requests: 60s\r\n"
                      "x-ratelimit-limit-tokens: 600\r\n"
                      "x-ratelimit-remaining-tokens: 300\r\n"
                      "x-ratelimit-reset-tokens: 30s\r\n";
    const char *h1m = "x-ratelimit-limit-requests: 3\r\n"
                      "x-ratelimit-remaining-requests: 0\r\n"
                      "x-ratelimit-reset-requests: 1m0s\r\n"
                      "x-ratelimit-limit-tokens: 600\r\n"
                      "x-ratelimit-remaining-tokens: 300\r\n"
                      "x-ratelimit-reset-tokens: 30s\r\n";
    dp_admit_headers(&a, h, sizeof(h));
    cr_assert(strcmp(h, h60) == 0 || strcmp(h, h1m) == 0, "%s", h);
    tg_snap_unref(s);
}

/* The lines come from numbers kept in the hold (not text: most requests have no limit and the
 * hold lives as long as the request); a dimension that does not fit is left out whole. */
Test(dp_ledger, rate_limit_lines_are_written_whole_or_not_at_all)
{
    dp_admit_t a;
    memset(&a, 0, sizeof(a));
    char h[384];
    cr_assert_eq(dp_admit_headers(&a, h, sizeof(h)), 0);
    cr_assert_str_eq(h, "");
    a.requests = (dp_rate_view_t){3, 2, 20.0};
    a.tokens = (dp_rate_view_t){600, 500, 0.25};
    static const char req[] = "x-ratelimit-limit-requests: 3\r\n"
                              "x-ratelimit-remaining-requests: 2\r\n"
                              "x-ratelimit-reset-requests: 20s\r\n";
    static const char tok[] = "x-ratelimit-limit-tokens: 600\r\n"
                              "x-ratelimit-remaining-tokens: 500\r\n"
                              "x-ratelimit-reset-tokens: 250ms\r\n";
    cr_assert_eq(dp_admit_headers(&a, h, sizeof(h)), sizeof(req) - 1 + sizeof(tok) - 1);
    cr_assert_eq(strncmp(h, req, sizeof(req) - 1), 0, "%s", h);
    cr_assert_str_eq(h + sizeof(req) - 1, tok);
    /* room for the requests' lines and half the tokens': the tokens' are left out */
    cr_assert_eq(dp_admit_headers(&a, h, sizeof(req) + 40), sizeof(req) - 1);
    cr_assert_str_eq(h, req);
}
