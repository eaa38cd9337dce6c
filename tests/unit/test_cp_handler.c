/* test_cp_handler.c: the pieces every API handler is built from that need no database: list pages
 * built from rows, decimal amounts, request bodies, path ids and error replies. Rows are made
 * with libpq's own result constructors. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <string.h>

#include "handler.h"

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

/* rows of (json, cursor) text */
static PGresult *rows(int n, const char *const (*v)[2])
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc att[2];
    memset(att, 0, sizeof(att));
    att[0].name = (char *)"j";
    att[1].name = (char *)"c";
    att[0].format = att[1].format = 0;
    att[0].typid = att[1].typid = 25; /* text */
    att[0].typlen = att[1].typlen = -1;
    cr_assert(PQsetResultAttrs(res, 2, att));
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 2; c++)
            cr_assert(PQsetvalue(res, i, c, (char *)v[i][c], (int)strlen(v[i][c])));
    return res;
}

/* The reply as JSON; the error code when it is an error. */
static json_t *reply(void)
{
    json_t *v = json_loadb(req.out.base, req.out.len, 0, NULL);
    cr_assert_not_null(v, "%.*s", (int)req.out.len, req.out.base);
    return v;
}

static const char *error_code(json_t *v)
{
    return json_string_value(json_object_get(json_object_get(v, "error"), "code"));
}

/* The reply is an error with this status and code. */
static void expect_error(int status, const char *code)
{
    json_t *e = reply();
    cr_assert_eq(req.status, status);
    cr_assert_str_eq(error_code(e), code);
    json_decref(e);
}

TestSuite(cp_handler, .init = setup, .fini = teardown);

static int second_column(PGresult *res, int row, tg_buf_t *out)
{
    return tg_buf_appendf(out, "\"%s\"", PQgetvalue(res, row, 1));
}

/* Builds the page of n rows at limit with row and compares it with want. */
static void expect_page(int n, const char *const (*v)[2], int limit, cp_list_row_fn row,
                        const char *want)
{
    PGresult *res = rows(n, v);
    tg_buf_t b = TG_BUF_INIT(4096);
    cr_assert_eq(cp_list_build(res, limit, 1, row, &b), 0);
    cr_assert(b.len == strlen(want) && memcmp(b.base, want, b.len) == 0, "%.*s", (int)b.len,
              b.base);
    tg_buf_dispose(&b);
    PQclear(res);
}

Test(cp_handler, a_full_page_names_the_last_row_shown_as_next_cursor)
{
    static const char *const v[3][2] = {
        {"{\"id\" : 1}", "c1"}, {"{\"id\" : 2}", "c2"}, {"{\"id\" : 3}", "c3"}};
    expect_page(3, v, 2, NULL, "{\"data\":[{\"id\" : 1},{\"id\" : 2}],\"next_cursor\":\"c2\"}");
}

Test(cp_handler, the_last_page_has_a_null_cursor)
{
    static const char *const v[2][2] = {{"{}", "c1"}, {"[]", "c2"}};
    expect_page(2, v, 2, NULL, "{\"data\":[{},[]],\"next_cursor\":null}");
}

Test(cp_handler, a_row_writer_writes_each_row)
{
    static const char *const v[1][2] = {{"{}", "x"}};
    expect_page(1, v, 5, second_column, "{\"data\":[\"x\"],\"next_cursor\":null}");
}

Test(cp_handler, a_page_too_large_for_its_buffer_fails)
{
    static const char *const v[1][2] = {{"{\"a\":\"0123456789\"}", "x"}};
    PGresult *res = rows(1, v);
    tg_buf_t b = TG_BUF_INIT(16);
    cr_assert_neq(cp_list_build(res, 5, 1, NULL, &b), 0);
    tg_buf_dispose(&b);
    PQclear(res);
}

Test(cp_handler, reply_page_takes_limit_rows_and_the_cursor_field)
{
    static const char *const v[3][2] = {
        {"{\"id\":\"a\"}", ""}, {"{\"id\":\"b\"}", ""}, {"{\"id\":\"c\"}", ""}};
    PGresult *res = rows(3, v);
    cp_reply_page(&req, res, 2, "id");
    PQclear(res);
    json_t *p = reply();
    cr_assert_eq(req.status, 200);
    cr_assert_eq(json_array_size(json_object_get(p, "data")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(p, "next_cursor")), "b");
    json_decref(p);
}

static int amount(const char *body, const char *name, bool required, char *out, bool *present)
{
    json_t *o = json_loads(body, 0, NULL);
    cr_assert_not_null(o);
    int rc = cp_body_amount(&req, o, name, required, 0, 1000, "from 0 to 1000", present, out, 40);
    json_decref(o);
    return rc;
}

Test(cp_handler, amounts_are_written_in_the_fewest_digits_that_read_back)
{
    char out[40];
    bool present;
    cr_assert_eq(amount("{\"a\": 0.1}", "a", true, out, &present), 0);
    cr_assert(present);
    cr_assert_str_eq(out, "0.1");
    cr_assert_eq(amount("{\"a\": 0.15}", "a", true, out, &present), 0);
    cr_assert_str_eq(out, "0.15");
    cr_assert_eq(amount("{\"a\": 12}", "a", true, out, &present), 0);
    cr_assert_str_eq(out, "12");
    cr_assert_eq(amount("{\"a\": 0.30000000000000004}", "a", true, out, &present), 0);
    cr_assert_str_eq(out, "0.30000000000000004");
}

Test(cp_handler, an_amount_out_of_range_is_a_422_naming_the_range)
{
    char out[40];
    bool present;
    cr_assert_eq(amount("{\"a\": 1000.5}", "a", true, out, &present), -1);
    cr_assert_not(present);
    json_t *e = reply();
    cr_assert_eq(req.status, 422);
    cr_assert_str_eq(error_code(e), "out_of_range");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "error"), "message")),
                     "\"a\" must be from 0 to 1000");
    json_decref(e);
}

Test(cp_handler, a_missing_required_amount_is_a_400_and_an_optional_one_is_absent)
{
    char out[40];
    bool present = true;
    cr_assert_eq(amount("{\"a\": null}", "a", false, out, &present), 0);
    cr_assert_not(present);
    cr_assert_eq(amount("{}", "a", true, out, &present), -1);
    expect_error(400, "missing_field");
}

Test(cp_handler, an_amount_that_is_no_number_is_a_400)
{
    char out[40];
    bool present;
    cr_assert_eq(amount("{\"a\": \"1.5\"}", "a", true, out, &present), -1);
    expect_error(400, "invalid_type");
}

Test(cp_handler, a_path_id_that_is_no_uuid_is_a_404_for_its_kind)
{
    req.params[0] = "123e4567-e89b-12d3-a456-426614174000";
    req.params[1] = "nope";
    cr_assert_eq(cp_path_id(&req, 0, "route"), 0);
    cr_assert_eq(req.status, 0, "nothing replied");
    cr_assert_eq(cp_path_id(&req, 1, "route"), -1);
    json_t *e = reply();
    cr_assert_eq(req.status, 404);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "error"), "message")),
                     "no such route");
    json_decref(e);
}

Test(cp_handler, a_uuid_is_36_characters_of_hex_and_four_dashes)
{
    cr_assert(cp_is_uuid("123e4567-e89b-12d3-a456-426614174000"));
    cr_assert(cp_is_uuid("123E4567-E89B-12D3-A456-426614174000"));
    cr_assert_not(cp_is_uuid("123e4567-e89b-12d3-a456-4266141740000"), "one character more");
    cr_assert_not(cp_is_uuid("123e4567-e89b-12d3-a456-42661417400"), "one character less");
    cr_assert_not(cp_is_uuid("123e4567e-89b-12d3-a456-426614174000"), "a dash out of place");
    cr_assert_not(cp_is_uuid("123e4567-e89b-12d3-a456-42661417400g"), "not hex");
    cr_assert_not(cp_is_uuid(""));
    cr_assert_not(cp_is_uuid(NULL));
}

Test(cp_handler, uuids_compare_in_any_case_and_only_as_uuids)
{
    cr_assert(
        cp_uuid_eq("123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000"));
    cr_assert(
        cp_uuid_eq("123E4567-E89B-12D3-A456-426614174000", "123e4567-e89b-12d3-a456-426614174000"));
    cr_assert_not(
        cp_uuid_eq("123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174001"));
    cr_assert_not(cp_uuid_eq("abc", "abc"));
    cr_assert_not(cp_uuid_eq(NULL, NULL));
}

Test(cp_handler, postgres_json_is_compacted_outside_strings_only)
{
    tg_buf_t b = TG_BUF_INIT(256);
    const char *in = "{\"a b\" : [1, 2], \"c\" : \"x \\\" y\"}";
    cr_assert_eq(cp_json_append_compact(&b, in, strlen(in)), 0);
    const char *want = "{\"a b\":[1,2],\"c\":\"x \\\" y\"}";
    cr_assert(b.len == strlen(want) && memcmp(b.base, want, b.len) == 0, "%.*s", (int)b.len,
              b.base);
    tg_buf_dispose(&b);
}

static json_t *body(const char *text, const char *const *allowed)
{
    req.body = text;
    req.body_len = strlen(text);
    return cp_body_object(&req, allowed);
}

Test(cp_handler, a_body_with_an_unknown_or_repeated_field_is_refused)
{
    static const char *const allowed[] = {"name", NULL};
    json_t *o = body("{\"name\":\"x\"}", allowed);
    cr_assert_not_null(o);
    json_decref(o);
    cr_assert_null(body("{\"name\":\"x\",\"extra\":1}", allowed));
    json_t *e = reply();
    cr_assert_str_eq(error_code(e), "unknown_field");
    json_decref(e);
    cr_assert_null(body("{\"name\":\"x\",\"name\":\"y\"}", allowed));
    e = reply();
    cr_assert_str_eq(error_code(e), "invalid_json");
    json_decref(e);
    cr_assert_null(body("[1]", allowed));
    cr_assert_eq(req.status, 400);
}

Test(cp_handler, strings_are_checked_for_length_and_control_characters)
{
    const char *out;
    json_t *o = json_pack("{s:s,s:s,s:s}", "ok", "fine", "long", "abcdef", "ctl", "a\x01z");
    cr_assert_eq(cp_body_str(&req, o, "ok", true, 5, &out), 0);
    cr_assert_str_eq(out, "fine");
    cr_assert_eq(cp_body_str(&req, o, "long", true, 5, &out), -1);
    cr_assert_eq(req.status, 422);
    cr_assert_eq(cp_body_str(&req, o, "ctl", true, 5, &out), -1);
    json_t *e = reply();
    cr_assert_str_eq(error_code(e), "invalid_characters");
    json_decref(e);
    json_decref(o);
}

Test(cp_handler, an_enum_lists_its_values_when_refused)
{
    static const char *const values[] = {"daily", "monthly", NULL};
    const char *out;
    json_t *o = json_pack("{s:s}", "period", "weekly");
    cr_assert_eq(cp_body_enum(&req, o, "period", true, values, &out), -1);
    json_t *e = reply();
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "error"), "message")),
                     "\"period\" must be one of: daily, monthly");
    json_decref(e);
    json_decref(o);
}

Test(cp_handler, roles_read_back_as_their_names)
{
    for (int i = CP_ROLE_VIEWER; i <= CP_ROLE_OWNER; i++)
        cr_assert_eq(cp_role_parse(cp_role_name(i)), i);
    cr_assert_eq(cp_role_parse("platform"), CP_ROLE_NONE, "platform is never granted by name");
    cr_assert_str_eq(cp_role_name(99), "none");
}
