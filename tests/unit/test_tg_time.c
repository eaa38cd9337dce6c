/* test_tg_time.c: RFC 3339 parsing and civil-date arithmetic shared by the API, ingestion and the
 * data plane's budget periods. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tg_time.h"

static bool parse(const char *s, int64_t *t, bool *frac)
{
    return tg_rfc3339_parse(s, strlen(s), false, t, frac);
}

Test(tg_time, days_from_civil_counts_from_the_epoch_across_leap_years)
{
    cr_assert_eq(tg_days_from_civil(1970, 1, 1), 0);
    cr_assert_eq(tg_days_from_civil(1969, 12, 31), -1);
    cr_assert_eq(tg_days_from_civil(2000, 3, 1), 11017);
    cr_assert_eq(tg_days_from_civil(2026, 12, 1) * 86400, 1796083200);
    cr_assert_eq(tg_days_from_civil(2027, 1, 1) * 86400, 1798761600);
}

Test(tg_time, rfc3339_gives_unix_seconds_with_offsets_and_fractions)
{
    int64_t t;
    bool frac;
    cr_assert(parse("2026-11-25T23:59:59Z", &t, &frac));
    cr_assert_eq(t, 1795651199);
    cr_assert(!frac);
    cr_assert(parse("2026-11-26T01:59:59.250+02:00", &t, &frac));
    cr_assert_eq(t, 1795651199);
    cr_assert(frac);
    cr_assert(parse("2026-11-25t21:59:59.000-02:00", &t, &frac));
    cr_assert_eq(t, 1795651199);
    cr_assert(!frac, "a zero fraction is no fraction");
    cr_assert(parse("2024-02-29T00:00:00Z", &t, NULL), "leap day");
}

Test(tg_time, rfc3339_refuses_what_is_not_a_time)
{
    const char *bad[] = {
        "2026-11-25",                      /* no time */
        "2026-11-25T10:00:00",             /* no offset */
        "2026-11-25 10:00:00Z",            /* space, not allowed here */
        "2026-13-01T00:00:00Z",            /* month */
        "2026-02-29T00:00:00Z",            /* not a leap year */
        "2026-04-31T00:00:00Z",            /* day of month */
        "2026-11-25T24:00:00Z",            /* hour */
        "2026-11-25T10:60:00Z",            /* minute */
        "2026-11-25T10:00:60Z",            /* second */
        "2026-11-25T10:00:00+24:00",       /* offset */
        "2026-11-25T10:00:00.Z",           /* empty fraction */
        "2026-11-25T10:00:00.1234567890Z", /* ten fraction digits */
        "2026-11-25T10:00:00Zjunk",
        "now",
        "infinity",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!parse(bad[i], NULL, NULL), "accepted \"%s\"", bad[i]);
    cr_assert(tg_rfc3339_parse("2026-11-25 10:00:00Z", 20, true, NULL, NULL), "space when allowed");
}

Test(tg_time, rfc3339_ms_matches_the_calendar)
{
    /* written by hand, not printf: check against gmtime + snprintf across years and leap days */
    static const int64_t ms[] = {0, 951782400999LL, 1732530000123LL, 4102444799999LL,
                                 253402300799999LL};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        char got[32], want[96];
        tg_rfc3339_ms(ms[i], got, sizeof(got));
        time_t s = (time_t)(ms[i] / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms[i] % 1000));
        cr_assert_str_eq(got, want);
    }
    char small[11];
    tg_rfc3339_ms(1732530000123LL, small, sizeof(small));
    cr_assert_str_eq(small, "2024-11-25", "cut to the room given, NUL-terminated");
}
