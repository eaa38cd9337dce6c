/* test_cp_api_usage.c: the query-string helpers of the reports (api/usage.c, shared with
 * requests.c and recommend.c): unknown, repeated and empty parameters, RFC 3339 times for
 * from/to (a fraction rounds `to` up) and uuid filters, through real requests. */
#include <criterion/criterion.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_mhd.h"

TestSuite(cp_api_usage, .init = mhd_start, .fini = mhd_stop);

static const char *const known[] = {"tenant_id", "from", "to", "bucket", NULL};

static void check(cp_req_t *r)
{
    if (cp__query_check(r, known, "tenant_id, from, to, bucket") == 0)
        r->status = 200;
}

static int64_t t_from, t_to;
static bool has_from, has_to;

static void times(cp_req_t *r)
{
    t_from = t_to = -7;
    if (cp__query_time(r, "from", false, &t_from, &has_from) == 0 &&
        cp__query_time(r, "to", true, &t_to, &has_to) == 0)
        r->status = 200;
}

static char uuid_seen[64];

static void uuid(cp_req_t *r)
{
    const char *v;
    if (cp__query_uuid(r, "key_id", &v) == 0) {
        snprintf(uuid_seen, sizeof(uuid_seen), "%s", v ? v : "(none)");
        r->status = 200;
    }
}

static void expect_400(mhd_fn_t fn, const char *target, const char *message)
{
    char c[64], m[256];
    cr_assert_eq(mhd_call(fn, "GET", target, NULL, NULL, 0), 400, "%s: %s", target, mhd_body);
    mhd_error(c, sizeof(c), m, sizeof(m));
    cr_assert_str_eq(c, "invalid_query", "%s", target);
    cr_assert_str_eq(m, message, "%s", target);
}

Test(cp_api_usage, known_parameters_once_each_with_a_value)
{
    cr_assert_eq(mhd_call(check, "GET", "/r", NULL, NULL, 0), 200);
    cr_assert_eq(mhd_call(check, "GET", "/r?from=a&to=b&bucket=day&tenant_id=x", NULL, NULL, 0),
                 200);
    cr_assert_eq(mhd_call(check, "GET", "/r?bucket=", NULL, NULL, 0), 200); /* empty, not absent */
    expect_400(check, "/r?start_date=x",
               "unknown query parameter \"start_date\"; known: tenant_id, from, to, bucket");
    expect_400(check, "/r?from=a&from=b", "from is given more than once");
    expect_400(check, "/r?bucket", "bucket needs a value");
    /* the unknown name is cut at 64 bytes */
    char target[200], want[300];
    char name[70];
    memset(name, 'n', 65);
    name[65] = '\0';
    snprintf(target, sizeof(target), "/r?%s=1", name);
    snprintf(want, sizeof(want),
             "unknown query parameter \"%.64s\"; known: tenant_id, from, to, "
             "bucket",
             name);
    expect_400(check, target, want);
}

Test(cp_api_usage, from_and_to_are_rfc_3339_times_with_an_offset)
{
    cr_assert_eq(mhd_call(times, "GET", "/r", NULL, NULL, 0), 200);
    cr_assert_not(has_from);
    cr_assert_not(has_to);
    cr_assert_eq(t_from, -7); /* absent leaves it */
    cr_assert_eq(mhd_call(times, "GET",
                          "/r?from=2030-01-31T12:00:00Z&to=2030-01-31T13:00:00%2B01:00", NULL, NULL,
                          0),
                 200, "%s", mhd_body);
    cr_assert(has_from);
    cr_assert(has_to);
    cr_assert_eq(t_from, 1896091200);
    cr_assert_eq(t_to, 1896091200);
    /* a fraction: from drops it, to rounds up to the next whole second */
    cr_assert_eq(mhd_call(times, "GET", "/r?from=2030-01-31T12:00:00.5Z&to=2030-01-31T12:00:00.5Z",
                          NULL, NULL, 0),
                 200);
    cr_assert_eq(t_from, 1896091200);
    cr_assert_eq(t_to, 1896091201);
    cr_assert_eq(mhd_call(times, "GET", "/r?to=2030-01-31T12:00:00.000Z", NULL, NULL, 0), 200);
    cr_assert_eq(t_to, 1896091200);
    const char *from_msg = "from must be an RFC 3339 time with an offset, such as "
                           "2030-01-31T12:00:00Z (write '+' as %2B in a URL)";
    expect_400(times, "/r?from=2030-01-31T12:00:00", from_msg);
    expect_400(times, "/r?from=2030-02-30T12:00:00Z", from_msg);
    expect_400(times, "/r?from=now", from_msg);
    /* an unescaped '+' is a space */
    expect_400(times, "/r?from=2030-01-31T12:00:00+01:00", from_msg);
    expect_400(times, "/r?to=2030-01-31",
               "to must be an RFC 3339 time with an offset, such as 2030-01-31T12:00:00Z (write "
               "'+' as %2B in a URL)");
}

Test(cp_api_usage, a_uuid_filter_is_a_uuid_or_absent)
{
    cr_assert_eq(mhd_call(uuid, "GET", "/r", NULL, NULL, 0), 200);
    cr_assert_str_eq(uuid_seen, "(none)");
    cr_assert_eq(
        mhd_call(uuid, "GET", "/r?key_id=0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f", NULL, NULL, 0),
        200);
    cr_assert_str_eq(uuid_seen, "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f");
    expect_400(uuid, "/r?key_id=0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6", "key_id must be a uuid");
    expect_400(uuid, "/r?key_id=", "key_id must be a uuid");
}
