/* test_cp_util.c: the helpers every API handler uses (util.c) that need no database: integer,
 * rate-limit and boolean body members at and past their bounds, the page parameters of a query
 * string (limit, cursor), and access checks that are answered without a membership row. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "cp.h"
#include "cp_mhd.h"

static cp_req_t req;

static void setup(void)
{
    memset(&req, 0, sizeof(req));
    tg_buf_init(&req.out, 1u << 20);
}

static void teardown(void)
{
    tg_buf_dispose(&req.out);
}

TestSuite(cp_util, .init = setup, .fini = teardown);

/* The reply is status with this error code, message and field (NULL: null). */
static void expect_error(int status, const char *code, const char *message, const char *field)
{
    json_t *v = json_loadb(req.out.base, req.out.len, 0, NULL);
    cr_assert_not_null(v, "%.*s", (int)req.out.len, req.out.base);
    json_t *e = json_object_get(v, "error");
    cr_assert_eq(req.status, status);
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), code);
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")), message);
    if (field)
        cr_assert_str_eq(json_string_value(json_object_get(e, "field")), field);
    else
        cr_assert(json_is_null(json_object_get(e, "field")));
    json_decref(v);
    tg_buf_reset(&req.out);
    req.status = 0;
}

static json_t *obj(const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    cr_assert_not_null(o, "%s", text);
    return o;
}

Test(cp_util, an_integer_is_taken_from_min_to_max_inclusive)
{
    json_t *o =
        obj("{\"lo\":1,\"hi\":10,\"under\":0,\"over\":11,\"s\":\"5\",\"r\":5.0,\"n\":null}");
    bool present = true;
    int64_t v = 0;
    cr_assert_eq(cp_body_int(&req, o, "lo", true, 1, 10, &present, &v), 0);
    cr_assert(present);
    cr_assert_eq(v, 1);
    cr_assert_eq(cp_body_int(&req, o, "hi", true, 1, 10, &present, &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(req.status, 0);
    cr_assert_eq(cp_body_int(&req, o, "under", true, 1, 10, &present, &v), -1);
    cr_assert_not(present);
    expect_error(422, "out_of_range", "\"under\" must be from 1 to 10", "under");
    cr_assert_eq(cp_body_int(&req, o, "over", true, 1, 10, &present, &v), -1);
    expect_error(422, "out_of_range", "\"over\" must be from 1 to 10", "over");
    cr_assert_eq(cp_body_int(&req, o, "s", true, 1, 10, &present, &v), -1);
    expect_error(400, "invalid_type", "\"s\" must be an integer", "s");
    cr_assert_eq(cp_body_int(&req, o, "r", true, 1, 10, &present, &v), -1);
    expect_error(400, "invalid_type", "\"r\" must be an integer", "r");
    /* null is absent: an error only when required */
    cr_assert_eq(cp_body_int(&req, o, "n", false, 1, 10, &present, &v), 0);
    cr_assert_not(present);
    cr_assert_eq(req.status, 0);
    cr_assert_eq(cp_body_int(&req, o, "n", true, 1, 10, &present, &v), -1);
    expect_error(400, "missing_field", "\"n\" is required", "n");
    cr_assert_eq(cp_body_int(&req, o, "gone", true, 1, 10, &present, &v), -1);
    expect_error(400, "missing_field", "\"gone\" is required", "gone");
    json_decref(o);
}

Test(cp_util, a_rate_limit_is_1_to_int32_max_or_null_to_remove_it)
{
    json_t *o = obj("{\"one\":1,\"max\":2147483647,\"zero\":0,\"big\":2147483648,\"off\":null,"
                    "\"s\":\"60\"}");
    char out[16];
    bool has = false, is_null = false;
    cr_assert_eq(cp_body_rate_limit(&req, o, "absent", &has, &is_null, out, sizeof(out)), 0);
    cr_assert_not(has);
    cr_assert_eq(cp_body_rate_limit(&req, o, "one", &has, &is_null, out, sizeof(out)), 0);
    cr_assert(has);
    cr_assert_not(is_null);
    cr_assert_str_eq(out, "1");
    cr_assert_eq(cp_body_rate_limit(&req, o, "max", &has, &is_null, out, sizeof(out)), 0);
    cr_assert_str_eq(out, "2147483647");
    has = false;
    cr_assert_eq(cp_body_rate_limit(&req, o, "off", &has, &is_null, out, sizeof(out)), 0);
    cr_assert(has);
    cr_assert(is_null);
    cr_assert_eq(req.status, 0);
    cr_assert_eq(cp_body_rate_limit(&req, o, "zero", &has, &is_null, out, sizeof(out)), -1);
    expect_error(422, "out_of_range", "\"zero\" must be from 1 to 2147483647", "zero");
    cr_assert_eq(cp_body_rate_limit(&req, o, "big", &has, &is_null, out, sizeof(out)), -1);
    expect_error(422, "out_of_range", "\"big\" must be from 1 to 2147483647", "big");
    cr_assert_eq(cp_body_rate_limit(&req, o, "s", &has, &is_null, out, sizeof(out)), -1);
    expect_error(400, "invalid_type", "\"s\" must be an integer", "s");
    json_decref(o);
}

Test(cp_util, a_boolean_is_true_or_false_and_nothing_else)
{
    json_t *o = obj("{\"t\":true,\"f\":false,\"n\":null,\"one\":1,\"s\":\"true\"}");
    bool present = false, v = false;
    cr_assert_eq(cp_body_bool(&req, o, "t", &present, &v), 0);
    cr_assert(present);
    cr_assert(v);
    cr_assert_eq(cp_body_bool(&req, o, "f", &present, &v), 0);
    cr_assert(present);
    cr_assert_not(v);
    cr_assert_eq(cp_body_bool(&req, o, "n", &present, &v), 0);
    cr_assert_not(present);
    cr_assert_eq(req.status, 0);
    cr_assert_eq(cp_body_bool(&req, o, "one", &present, &v), -1);
    expect_error(400, "invalid_type", "\"one\" must be a boolean", "one");
    cr_assert_eq(cp_body_bool(&req, o, "s", &present, &v), -1);
    expect_error(400, "invalid_type", "\"s\" must be a boolean", "s");
    json_decref(o);
}

Test(cp_util, roles_parse_from_their_names_only_viewer_to_owner)
{
    cr_assert_eq(cp_role_parse("viewer"), CP_ROLE_VIEWER);
    cr_assert_eq(cp_role_parse("member"), CP_ROLE_MEMBER);
    cr_assert_eq(cp_role_parse("admin"), CP_ROLE_ADMIN);
    cr_assert_eq(cp_role_parse("owner"), CP_ROLE_OWNER);
    /* platform is a user's flag, never a membership's role */
    cr_assert_eq(cp_role_parse("platform"), CP_ROLE_NONE);
    cr_assert_eq(cp_role_parse("none"), CP_ROLE_NONE);
    cr_assert_eq(cp_role_parse("Owner"), CP_ROLE_NONE);
    cr_assert_eq(cp_role_parse(""), CP_ROLE_NONE);
    cr_assert_str_eq(cp_role_name(-1), "none");
    cr_assert_str_eq(cp_role_name(6), "none");
}

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define OTHER "1b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"

Test(cp_util, a_role_is_none_without_a_caller_a_uuid_or_outside_a_tokens_tenant)
{
    cr_assert_eq(cp_role_in(&req, TENANT), CP_ROLE_NONE); /* not authenticated */
    req.who.authenticated = true;
    req.who.platform_admin = true;
    cr_assert_eq(cp_role_in(&req, TENANT), CP_ROLE_PLATFORM);
    cr_assert_eq(cp_role_in(&req, "not-a-uuid"), CP_ROLE_NONE);
    cr_assert_eq(cp_role_in(&req, NULL), CP_ROLE_NONE);
    /* a platform admin's token scoped to one tenant reaches only that one, capped at its role */
    req.who.platform_admin = false;
    req.who.user_platform_admin = true;
    req.who.via_token = true;
    req.who.token_role = CP_ROLE_MEMBER;
    snprintf(req.who.token_tenant, sizeof(req.who.token_tenant), "%s", TENANT);
    cr_assert_eq(cp_role_in(&req, TENANT), CP_ROLE_MEMBER);
    cr_assert_eq(cp_role_in(&req, OTHER), CP_ROLE_NONE);
    req.who.token_tenant[0] = '\0'; /* any tenant */
    cr_assert_eq(cp_role_in(&req, OTHER), CP_ROLE_MEMBER);
}

Test(cp_util, require_role_is_404_without_a_role_and_403_below_the_one_needed)
{
    cr_assert_eq(cp_require_role(&req, TENANT, CP_ROLE_VIEWER), -1);
    expect_error(404, "not_found", "no such tenant", NULL);
    req.who.authenticated = true;
    req.who.user_platform_admin = true;
    req.who.via_token = true;
    req.who.token_role = CP_ROLE_ADMIN;
    cr_assert_eq(cp_require_role(&req, TENANT, CP_ROLE_ADMIN), CP_ROLE_ADMIN);
    cr_assert_eq(req.status, 0);
    cr_assert_eq(cp_require_role(&req, TENANT, CP_ROLE_OWNER), -1);
    expect_error(403, "forbidden", "this needs the owner role in the tenant; you have admin", NULL);
}

Test(cp_util, require_platform_answers_403_naming_what)
{
    cr_assert_not(cp_require_platform(&req, "may list tenants"));
    expect_error(403, "forbidden", "only platform admins may list tenants", NULL);
    req.who.platform_admin = true;
    cr_assert(cp_require_platform(&req, "may list tenants"));
    cr_assert_eq(req.status, 0);
}

/* ---- the query string, through a real request ---- */

static int page_limit;
static char page_cursor[256];
static bool page_uuid;

static void page(cp_req_t *r)
{
    const char *cursor;
    int rc = page_uuid ? cp_page_params_uuid(r, &page_limit, &cursor)
                       : cp_page_params(r, &page_limit, &cursor);
    if (rc != 0)
        return;
    snprintf(page_cursor, sizeof(page_cursor), "%s", cursor ? cursor : "(none)");
    r->status = 200;
}

/* GET target: 200 with limit and cursor, or 400 with message on field. */
static void expect_page(const char *target, int limit, const char *cursor)
{
    cr_assert_eq(mhd_call(page, "GET", target, NULL, NULL, 0), 200, "%s: %s", target, mhd_body);
    cr_assert_eq(page_limit, limit, "%s", target);
    cr_assert_str_eq(page_cursor, cursor, "%s", target);
}

static void expect_page_error(const char *target, const char *field, const char *message)
{
    char code[64], msg[256];
    cr_assert_eq(mhd_call(page, "GET", target, NULL, NULL, 0), 400, "%s", target);
    mhd_error(code, sizeof(code), msg, sizeof(msg));
    cr_assert_str_eq(code, "invalid_query", "%s", target);
    cr_assert_str_eq(msg, message, "%s", target);
    json_t *v = json_loads(mhd_body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "error"), "field")),
                     field);
    json_decref(v);
}

Test(cp_util, limit_is_1_to_200_and_50_without_one, .init = mhd_start, .fini = mhd_stop)
{
    const char *lim = "limit must be an integer from 1 to 200";
    expect_page("/x", 50, "(none)");
    expect_page("/x?limit=1", 1, "(none)");
    expect_page("/x?limit=200", 200, "(none)");
    expect_page_error("/x?limit=0", "limit", lim);
    expect_page_error("/x?limit=201", "limit", lim);
    expect_page_error("/x?limit=", "limit", lim);
    expect_page_error("/x?limit=5x", "limit", lim);
    expect_page_error("/x?limit=-1", "limit", lim);
}

Test(cp_util, a_cursor_is_1_to_128_bytes_and_a_uuid_where_lists_page_by_id, .init = mhd_start,
     .fini = mhd_stop)
{
    char target[300], c128[129];
    memset(c128, 'c', 128);
    c128[128] = '\0';
    snprintf(target, sizeof(target), "/x?limit=3&cursor=%s", c128);
    expect_page(target, 3, c128);
    snprintf(target, sizeof(target), "/x?cursor=%sc", c128);
    expect_page_error(target, "cursor", "cursor is not valid");
    expect_page_error("/x?cursor=", "cursor", "cursor is not valid");
    page_uuid = true;
    expect_page("/x?cursor=" TENANT, 50, TENANT);
    expect_page_error("/x?cursor=abc", "cursor", "cursor is not valid");
    expect_page_error("/x?limit=0&cursor=" TENANT, "limit",
                      "limit must be an integer from 1 to 200");
}
