/* test_cp_sync.c: GET /dp/v1/snapshot up to the database (sync.c): the data-plane token and the
 * after= version, through real requests; and the data-plane list is for platform admins only. */
#include <criterion/criterion.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_mhd.h"

TestSuite(cp_sync, .init = mhd_start_dp, .fini = mhd_stop);

static const char *const with_token[] = {"Authorization: Bearer " MHD_DP_TOKEN, NULL};

static void expect(const char *const *headers, const char *target, int status, const char *code,
                   const char *message)
{
    char c[64], m[256];
    cr_assert_eq(mhd_call(cp_dp_snapshot, "GET", target, headers, NULL, 0), status, "%s: %s",
                 target, mhd_body);
    mhd_error(c, sizeof(c), m, sizeof(m));
    cr_assert_str_eq(c, code, "%s", target);
    cr_assert_str_eq(m, message, "%s", target);
}

Test(cp_sync, a_snapshot_needs_the_data_plane_token)
{
    expect(NULL, "/dp/v1/snapshot", 401, "unauthenticated", "a valid data-plane token is required");
    const char *wrong[] = {"Authorization: Bearer dp-unit-toke", NULL};
    expect(wrong, "/dp/v1/snapshot", 401, "unauthenticated",
           "a valid data-plane token is required");
    /* checked before after= */
    expect(NULL, "/dp/v1/snapshot?after=x", 401, "unauthenticated",
           "a valid data-plane token is required");
}

Test(cp_sync, after_is_a_non_negative_64_bit_version)
{
    const char *unreachable = "the database is unreachable; retry shortly";
    const char *bad = "after must be a non-negative integer (a snapshot version)";
    /* valid: on to the database, which this test has none of */
    expect(with_token, "/dp/v1/snapshot", 503, "database_unavailable", unreachable);
    expect(with_token, "/dp/v1/snapshot?after=0", 503, "database_unavailable", unreachable);
    expect(with_token, "/dp/v1/snapshot?after=9223372036854775807", 503, "database_unavailable",
           unreachable);
    expect(with_token, "/dp/v1/snapshot?after=9223372036854775808", 400, "invalid_query", bad);
    expect(with_token, "/dp/v1/snapshot?after=-1", 400, "invalid_query", bad);
    expect(with_token, "/dp/v1/snapshot?after=%2B1", 400, "invalid_query", bad);
    expect(with_token, "/dp/v1/snapshot?after=%201", 400, "invalid_query", bad);
    expect(with_token, "/dp/v1/snapshot?after=1x", 400, "invalid_query", bad);
    expect(with_token, "/dp/v1/snapshot?after=", 400, "invalid_query", bad);
}

Test(cp_sync, only_platform_admins_list_data_planes)
{
    cp_req_t r;
    memset(&r, 0, sizeof(r));
    tg_buf_init(&r.out, 4096);
    r.who.authenticated = true;
    cp_api_dataplanes_list(&r);
    cr_assert_eq(r.status, 403);
    json_t *v = json_loadb(r.out.base, r.out.len, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "error"), "message")),
                     "only platform admins list data planes");
    json_decref(v);
    tg_buf_dispose(&r.out);
}
