/* test_dp_health.c: the circuit breaker per target: when it opens, when it lets a probe through,
 * what closes it again, and the table's bookkeeping. */
#include <criterion/criterion.h>

#include "health.h"

static dp_health_t *make(uint32_t failures, uint32_t open_ms)
{
    dp_health_opts_t o = DP_HEALTH_OPTS_DEFAULT;
    o.failures = failures;
    o.open_ms = open_ms;
    dp_health_t *h = dp_health_create(&o);
    cr_assert_not_null(h);
    return h;
}

static void attempt(dp_health_t *h, dp_tstate_t *t, bool ok, uint64_t now)
{
    dp_health_start(h, t, now);
    dp_health_end(h, t, ok, ok ? 10.0 : -1.0, now);
}

/* A target whose circuit one failure at t=100 opened, with a 1000 ms cool-down. */
static dp_tstate_t *opened(dp_health_t **h)
{
    *h = make(1, 1000);
    dp_tstate_t *t = dp_health_get(*h, "p1", "m");
    attempt(*h, t, false, 100);
    return t;
}

Test(dp_health, consecutive_failures_open_the_circuit)
{
    dp_health_t *h = make(3, 1000);
    dp_tstate_t *t = dp_health_get(h, "p1", "m");
    cr_assert_not_null(t);
    attempt(h, t, false, 100);
    attempt(h, t, false, 101);
    cr_assert_eq(atomic_load(&t->state), DP_CIRCUIT_CLOSED);
    cr_assert(dp_health_available(h, t, 102));
    attempt(h, t, false, 102);
    cr_assert_eq(atomic_load(&t->state), DP_CIRCUIT_OPEN);
    cr_assert_eq(atomic_load(&t->opens), 1);
    cr_assert_not(dp_health_available(h, t, 103));
    dp_health_destroy(h);
}

Test(dp_health, a_success_resets_the_run_of_failures)
{
    dp_health_t *h = make(3, 1000);
    dp_tstate_t *t = dp_health_get(h, "p1", "m");
    attempt(h, t, false, 100);
    attempt(h, t, false, 101);
    attempt(h, t, true, 102);
    attempt(h, t, false, 103);
    attempt(h, t, false, 104);
    cr_assert_eq(atomic_load(&t->state), DP_CIRCUIT_CLOSED);
    dp_health_destroy(h);
}

Test(dp_health, after_the_cool_down_one_probe_goes_and_its_success_closes)
{
    dp_health_t *h;
    dp_tstate_t *t = opened(&h);
    cr_assert_not(dp_health_available(h, t, 1099));
    cr_assert(dp_health_available(h, t, 1100));
    dp_health_start(h, t, 1100); /* the probe */
    cr_assert_not(dp_health_available(h, t, 1101), "a second attempt while the probe is out");
    dp_health_end(h, t, true, 5.0, 1102);
    cr_assert_eq(atomic_load(&t->state), DP_CIRCUIT_CLOSED);
    cr_assert(dp_health_available(h, t, 1103));
    dp_health_destroy(h);
}

Test(dp_health, a_failed_probe_opens_the_circuit_again)
{
    dp_health_t *h;
    dp_tstate_t *t = opened(&h);
    dp_health_start(h, t, 1200);
    dp_health_end(h, t, false, -1.0, 1201);
    cr_assert_eq(atomic_load(&t->state), DP_CIRCUIT_OPEN);
    cr_assert_not(dp_health_available(h, t, 1300), "the cool-down starts over");
    cr_assert(dp_health_available(h, t, 2201));
    dp_health_destroy(h);
}

Test(dp_health, a_cancelled_probe_lets_the_next_attempt_probe)
{
    dp_health_t *h;
    dp_tstate_t *t = opened(&h);
    dp_health_start(h, t, 1100);
    dp_health_cancel(h, t);
    cr_assert(dp_health_available(h, t, 1101));
    dp_health_destroy(h);
}

Test(dp_health, targets_are_told_apart_by_provider_and_model)
{
    dp_health_t *h = make(1, 1000);
    dp_tstate_t *a = dp_health_get(h, "p1", "m1");
    dp_tstate_t *b = dp_health_get(h, "p1", "m2");
    cr_assert_neq(a, b);
    cr_assert_eq(dp_health_get(h, "p1", "m1"), a, "the same target is found again");
    cr_assert_eq(dp_health_count(h), 2);
    attempt(h, a, false, 100);
    cr_assert_not(dp_health_available(h, a, 101));
    cr_assert(dp_health_available(h, b, 101));
    cr_assert(dp_health_available(h, NULL, 101), "an untracked target is healthy");
    dp_health_destroy(h);
}

Test(dp_health, in_flight_attempts_are_counted)
{
    dp_health_t *h = make(5, 1000);
    dp_tstate_t *t = dp_health_get(h, "p1", "m");
    dp_health_start(h, t, 1);
    dp_health_start(h, t, 1);
    cr_assert_eq(t->inflight, 2);
    dp_health_end(h, t, true, 20.0, 2);
    cr_assert_eq(t->inflight, 1);
    cr_assert_gt(t->ewma_ttfb_ms, 0.0);
    dp_health_cancel(h, t);
    cr_assert_eq(t->inflight, 0);
    dp_health_destroy(h);
}

Test(dp_health, an_error_rate_over_the_threshold_opens_without_a_run_of_failures)
{
    dp_health_opts_t o = DP_HEALTH_OPTS_DEFAULT;
    o.failures = 1000; /* never by a run */
    o.min_requests = 10;
    o.error_rate_pct = 50;
    o.window_ms = 10000;
    dp_health_t *h = dp_health_create(&o);
    dp_tstate_t *t = dp_health_get(h, "p1", "m");
    for (int i = 0; i < 5; i++) {
        attempt(h, t, true, 100);
        attempt(h, t, false, 100);
    }
    cr_assert_eq(atomic_load(&t->state), DP_CIRCUIT_CLOSED, "50%% is not over 50%%");
    attempt(h, t, false, 100);
    cr_assert_eq(atomic_load(&t->state), DP_CIRCUIT_OPEN);
    dp_health_destroy(h);
}

Test(dp_health, the_error_rate_counts_within_its_window_only)
{
    dp_health_opts_t o = DP_HEALTH_OPTS_DEFAULT;
    o.failures = 1000;
    o.min_requests = 4;
    o.error_rate_pct = 50;
    o.window_ms = 1000;
    dp_health_t *h = dp_health_create(&o);
    dp_tstate_t *t = dp_health_get(h, "p1", "m");
    attempt(h, t, false, 100);
    attempt(h, t, false, 100);
    attempt(h, t, false, 100);
    /* a new window: the three failures above are forgotten */
    attempt(h, t, true, 1200);
    attempt(h, t, true, 1200);
    attempt(h, t, true, 1200);
    attempt(h, t, false, 1200);
    cr_assert_eq(atomic_load(&t->state), DP_CIRCUIT_CLOSED);
    dp_health_destroy(h);
}
