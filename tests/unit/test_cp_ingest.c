/* test_cp_ingest.c: POST /dp/v1/usage up to the database (ingest.c): the data-plane token, the
 * batch's event limit counted before any event is read (blank lines are no events), and the
 * counters /metrics shows. A request without a database answers 503 once past those checks. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_mhd.h"

TestSuite(cp_ingest, .init = mhd_start_dp, .fini = mhd_stop);

static const char *const with_token[] = {"Authorization: Bearer " MHD_DP_TOKEN, NULL};

/* POSTs body and expects status with this error code and message. */
static void expect(const char *const *headers, const char *body, int status, const char *code,
                   const char *message)
{
    char c[64], m[256];
    cr_assert_eq(mhd_call(cp_dp_usage, "POST", "/dp/v1/usage", headers, body, strlen(body)), status,
                 "%s", mhd_body);
    mhd_error(c, sizeof(c), m, sizeof(m));
    cr_assert_str_eq(c, code);
    cr_assert_str_eq(m, message);
}

Test(cp_ingest, only_the_data_plane_token_may_post)
{
    const char *msg = "a valid data-plane token is required";
    expect(NULL, "", 401, "unauthenticated", msg);
    const char *wrong[] = {"Authorization: Bearer dp-unit-tokeN", NULL};
    expect(wrong, "", 401, "unauthenticated", msg);
    const char *longer[] = {"Authorization: Bearer dp-unit-token2", NULL};
    expect(longer, "", 401, "unauthenticated", msg);
    const char *basic[] = {"Authorization: Basic dp-unit-token", NULL};
    expect(basic, "", 401, "unauthenticated", msg);
    /* the scheme in any case; past the token, no database here */
    const char *lower[] = {"Authorization: bearer dp-unit-token", NULL};
    expect(lower, "", 503, "database_unavailable", "the database is unreachable; retry shortly");
    expect(with_token, "", 503, "database_unavailable",
           "the database is unreachable; retry shortly");
}

Test(cp_ingest, no_token_configured_refuses_everyone)
{
    mhd_dp_opts.dp_token = "";
    const char *empty[] = {"Authorization: Bearer ", NULL};
    expect(empty, "", 401, "unauthenticated", "a valid data-plane token is required");
}

/* n lines of "{}" each followed by sep. */
static char *batch(int n, const char *sep)
{
    size_t k = strlen(sep);
    char *b = malloc((size_t)n * (2 + k) + 1), *p = b;
    cr_assert_not_null(b);
    for (int i = 0; i < n; i++) {
        memcpy(p, "{}", 2);
        memcpy(p + 2, sep, k);
        p += 2 + k;
    }
    *p = '\0';
    return b;
}

Test(cp_ingest, a_batch_holds_at_most_5000_events)
{
    char *b = batch(5000, "\n");
    expect(with_token, b, 503, "database_unavailable",
           "the database is unreachable; retry shortly");
    free(b);
    b = batch(5001, "\n");
    expect(with_token, b, 413, "payload_too_large",
           "a batch holds at most 5000 events; this one has 5001");
    free(b);
    /* the last line needs no newline */
    b = batch(5001, "\n");
    b[strlen(b) - 1] = '\0';
    expect(with_token, b, 413, "payload_too_large",
           "a batch holds at most 5000 events; this one has 5001");
    free(b);
}

Test(cp_ingest, blank_lines_are_no_events)
{
    char *b = batch(5000, "\r\n \t\r\n\n");
    expect(with_token, b, 503, "database_unavailable",
           "the database is unreachable; retry shortly");
    free(b);
    b = batch(5001, "\r\n \t\r\n\n");
    expect(with_token, b, 413, "payload_too_large",
           "a batch holds at most 5000 events; this one has 5001");
    free(b);
}

Test(cp_ingest, metrics_count_events_and_batches_by_result)
{
    tg_buf_t b = TG_BUF_INIT(4096);
    cr_assert_eq(cp_ingest_metrics(&b), 0);
    const char *want =
        "# HELP tollgate_control_usage_events_total Usage events received from data planes: "
        "accepted (stored), duplicate (already stored), rejected (invalid).\n"
        "# TYPE tollgate_control_usage_events_total counter\n"
        "tollgate_control_usage_events_total{result=\"accepted\"} 0\n"
        "tollgate_control_usage_events_total{result=\"duplicate\"} 0\n"
        "tollgate_control_usage_events_total{result=\"rejected\"} 0\n"
        "# HELP tollgate_control_usage_batches_total Usage batches: ok (answered 200) or failed "
        "(the database could not store them; answered 503).\n"
        "# TYPE tollgate_control_usage_batches_total counter\n"
        "tollgate_control_usage_batches_total{result=\"ok\"} 0\n"
        "tollgate_control_usage_batches_total{result=\"failed\"} 0\n";
    cr_assert_eq(b.len, strlen(want));
    cr_assert_eq(memcmp(b.base, want, b.len), 0, "%.*s", (int)b.len, b.base);
    /* a batch refused before the database counts as neither */
    char *body = batch(5001, "\n");
    expect(with_token, body, 413, "payload_too_large",
           "a batch holds at most 5000 events; this one has 5001");
    free(body);
    tg_buf_reset(&b);
    cr_assert_eq(cp_ingest_metrics(&b), 0);
    cr_assert_eq(b.len, strlen(want));
    cr_assert_eq(memcmp(b.base, want, b.len), 0, "%.*s", (int)b.len, b.base);
    tg_buf_dispose(&b);
}
