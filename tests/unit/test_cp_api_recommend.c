/* test_cp_api_recommend.c: GET /api/v1/usage/recommendations up to the database
 * (api/recommend.c): its query parameters, a tenant, and a range of at most 400 days whose from
 * comes before to, through real requests. A valid request gets as far as the tenant lookup, which
 * answers 503 here: there is no database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_mhd.h"

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define Q "/api/v1/usage/recommendations?tenant_id=" TENANT

TestSuite(cp_api_recommend, .init = mhd_start, .fini = mhd_stop);

static void as_platform_admin(cp_req_t *r)
{
    r->who.authenticated = true;
    r->who.platform_admin = true;
    cp_api_usage_recommendations(r);
}

static void expect(const char *target, int status, const char *code, const char *message)
{
    char c[64], m[256];
    cr_assert_eq(mhd_call(as_platform_admin, "GET", target, NULL, NULL, 0), status, "%s: %s",
                 target, mhd_body);
    mhd_error(c, sizeof(c), m, sizeof(m));
    cr_assert_str_eq(c, code, "%s", target);
    cr_assert_str_eq(m, message, "%s", target);
}

static const char *const unreachable = "the database could not complete the request; retry shortly";

Test(cp_api_recommend, recommendations_are_per_tenant)
{
    expect("/api/v1/usage/recommendations", 400, "invalid_query",
           "tenant_id is required: recommendations are per tenant");
    expect("/api/v1/usage/recommendations?tenant_id=acme", 400, "invalid_query",
           "tenant_id must be a uuid");
    expect(Q "&key_id=x", 400, "invalid_query",
           "unknown query parameter \"key_id\"; known: tenant_id, from, to");
    expect(Q, 503, "database_unavailable", unreachable);
}

Test(cp_api_recommend, from_comes_before_to)
{
    expect(Q "&from=2030-01-02T00:00:00Z&to=2030-01-02T00:00:00Z", 400, "invalid_query",
           "from must be before to");
    expect(Q "&from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", 400, "invalid_query",
           "from must be before to");
    expect(Q "&from=2030-01-01T00:00:00Z&to=2030-01-01T00:00:01Z", 503, "database_unavailable",
           unreachable);
    /* without to, to is now */
    expect(Q "&from=2999-01-01T00:00:00Z", 400, "invalid_query", "from must be in the past");
}

Test(cp_api_recommend, the_range_is_at_most_400_days)
{
    /* 2030-01-01 + 400 days = 2031-02-05 */
    expect(Q "&from=2030-01-01T00:00:00Z&to=2031-02-05T00:00:00Z", 503, "database_unavailable",
           unreachable);
    expect(Q "&from=2030-01-01T00:00:00Z&to=2031-02-05T00:00:01Z", 400, "invalid_query",
           "from and to must be at most 400 days apart");
    /* a fraction of a second in to rounds it up past the bound */
    expect(Q "&from=2030-01-01T00:00:00Z&to=2031-02-05T00:00:00.5Z", 400, "invalid_query",
           "from and to must be at most 400 days apart");
}
