/* test_dp_rrecord.c: reading stored-response records on both planes: the item ids the data
 * plane caches, an item by id and the input_items page (dataplane/rrecord.c), and the lines and
 * records of a ship (controlplane/rstore_rec.c). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "rrecord.h"
#include "rstore_rec.h"

#define TENANT "0b9f6d2e-3c1a-4f5e-9d7c-2a8b6e4f1c3d"

static const char REC[] =
    "{\"id\":\"resp_1\",\"tenant\":\"" TENANT "\",\"key\":null,\"created_at\":1764072000,"
    "\"response\":{\"id\":\"resp_1\",\"output\":[{\"id\":\"msg_out\",\"type\":\"message\"}]},"
    "\"input_items\":[{\"id\":\"in_0\"},{\"id\":\"in_1\"},{\"id\":\"bad id\"},{\"id\":7},"
    "{\"id\":\"in_3\"},{\"id\":\"in_4\"}]}";

static json_t *page(const char *url)
{
    json_t *rec = json_loads(REC, 0, NULL);
    cr_assert_not_null(rec);
    tg_err_t err;
    tg_err_clear(&err);
    json_t *p = dp_rrecord_items_page(rec, url, strlen(url), &err);
    json_decref(rec); /* the page holds its own references */
    return p;
}

static void assert_ids(const json_t *p, const char *want)
{
    char got[256] = "";
    size_t i;
    const json_t *it;
    json_array_foreach(json_object_get(p, "data"), i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        strncat(got, i ? "," : "", sizeof(got) - strlen(got) - 1);
        strncat(got, id ? id : "-", sizeof(got) - strlen(got) - 1);
    }
    cr_assert_str_eq(got, want);
}

Test(dp_rrecord, item_ids_are_the_input_then_output_ids_the_store_takes)
{
    char **ids;
    size_t n = dp_rrecord_item_ids(REC, sizeof(REC) - 1, &ids, NULL);
    cr_assert_eq(n, 5);
    const char *want[] = {"in_0", "in_1", "in_3", "in_4", "msg_out"};
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(ids[i], want[i]);
        free(ids[i]);
    }
    free(ids);
    cr_assert_eq(dp_rrecord_item_ids("{\"input_items\":", 15, &ids, NULL), 0);
    cr_assert_null(ids);
}

Test(dp_rrecord, the_record_own_id_comes_back_when_asked_and_a_bad_one_changes_nothing)
{
    char **ids, rid[129] = "msg_out";
    size_t n = dp_rrecord_item_ids(REC, sizeof(REC) - 1, &ids, rid);
    cr_assert_str_eq(rid, "resp_1"); /* fetched by an item's id, cached under the response's */
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    static const char bad[] = "{\"id\":\"bad id\",\"input_items\":[]}";
    n = dp_rrecord_item_ids(bad, sizeof(bad) - 1, &ids, rid);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(rid, "resp_1");
}

Test(dp_rrecord, an_item_is_found_by_id_in_the_input_or_the_output)
{
    json_t *rec = json_loads(REC, 0, NULL);
    cr_assert_eq(dp_rrecord_item(rec, "in_1"),
                 json_array_get(json_object_get(rec, "input_items"), 1));
    cr_assert_not_null(dp_rrecord_item(rec, "msg_out"));
    cr_assert_null(dp_rrecord_item(rec, "in_9"));
    json_decref(rec);
}

Test(dp_rrecord, the_page_is_newest_first_by_default_and_pages_with_after_and_before)
{
    json_t *p = page("/v1/responses/resp_1/input_items");
    cr_assert_str_eq(json_string_value(json_object_get(p, "object")), "list");
    assert_ids(p, "in_4,in_3,-,bad id,in_1,in_0");
    cr_assert_str_eq(json_string_value(json_object_get(p, "first_id")), "in_4");
    cr_assert_str_eq(json_string_value(json_object_get(p, "last_id")), "in_0");
    cr_assert(json_is_false(json_object_get(p, "has_more")));
    json_decref(p);
    p = page("/x?order=asc&limit=2");
    assert_ids(p, "in_0,in_1");
    cr_assert(json_is_true(json_object_get(p, "has_more")));
    json_decref(p);
    p = page("/x?order=asc&after=in_0&before=in_4");
    assert_ids(p, "in_1,bad id,-,in_3");
    cr_assert(json_is_false(json_object_get(p, "has_more")));
    json_decref(p);
    p = page("/x?after=in_0");
    assert_ids(p, "");
    cr_assert(json_is_null(json_object_get(p, "first_id")));
    json_decref(p);
}

Test(dp_rrecord, a_bad_limit_or_order_is_a_400_naming_it)
{
    static const char *const limits[] = {"/x?limit=0", "/x?limit=101", "/x?limit=", "/x?limit=1x"};
    json_t *rec = json_loads(REC, 0, NULL);
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        tg_err_t err;
        tg_err_clear(&err);
        cr_assert_null(dp_rrecord_items_page(rec, limits[i], strlen(limits[i]), &err));
        cr_assert_eq(err.status, 400, "%s", limits[i]);
        cr_assert_str_eq(err.param, "limit");
    }
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_null(dp_rrecord_items_page(rec, "/x?order=up", 11, &err));
    cr_assert_eq(err.status, 400);
    cr_assert_str_eq(err.param, "order");
    json_decref(rec);
}

Test(cp_rstore_rec, lines_skip_blank_ones_cut_trailing_cr_and_spaces_and_count_every_line)
{
    static const char body[] = "a\r\n\n  \r\nbb  \nc";
    size_t pos = 0, n;
    long long lineno = 0;
    const char *line;
    cr_assert(cp_ship_next_line(body, sizeof(body) - 1, &pos, &lineno, &line, &n));
    cr_assert(n == 1 && line[0] == 'a' && lineno == 1);
    cr_assert(cp_ship_next_line(body, sizeof(body) - 1, &pos, &lineno, &line, &n));
    cr_assert(n == 2 && memcmp(line, "bb", 2) == 0 && lineno == 4);
    cr_assert(cp_ship_next_line(body, sizeof(body) - 1, &pos, &lineno, &line, &n));
    cr_assert(n == 1 && line[0] == 'c' && lineno == 5);
    cr_assert_not(cp_ship_next_line(body, sizeof(body) - 1, &pos, &lineno, &line, &n));
}

static const char *read_one(const char *text, cp_ship_rec_t *rec, json_t **o)
{
    *o = json_loads(text, 0, NULL);
    cr_assert_not_null(*o, "%s", text);
    memset(rec, 0, sizeof(*rec));
    return cp_ship_read_record(*o, rec);
}

Test(cp_rstore_rec, a_record_is_read_with_the_ids_of_its_items)
{
    cp_ship_rec_t rec;
    json_t *o;
    cr_assert_null(read_one(REC, &rec, &o));
    cr_assert_str_eq(rec.id, "resp_1");
    cr_assert_str_eq(rec.tenant, TENANT);
    cr_assert_null(rec.key);
    cr_assert_str_eq(rec.created, "1764072000");
    cr_assert_str_eq(rec.items.base, "{in_0,in_1,in_3,in_4,msg_out}");
    tg_buf_dispose(&rec.items);
    json_decref(o);
}

Test(cp_rstore_rec, each_bad_member_is_refused_with_its_reason)
{
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"[]", "a record must be a JSON object"},
        {"{\"id\":\"a b\"}", "\"id\" must be 1-128 letters, digits, '_' or '-'"},
        {"{\"id\":\"r\",\"tenant\":\"t\"}", "\"tenant\" must be a uuid"},
        {"{\"id\":\"r\",\"tenant\":\"" TENANT "\",\"key\":\"k\"}",
         "\"key\" must be a uuid or null"},
        {"{\"id\":\"r\",\"tenant\":\"" TENANT "\",\"created_at\":-1}",
         "\"created_at\" must be unix seconds"},
        {"{\"id\":\"r\",\"tenant\":\"" TENANT "\",\"created_at\":1,\"response\":[]}",
         "\"response\" must be an object"},
        {"{\"id\":\"r\",\"tenant\":\"" TENANT "\",\"created_at\":1,\"response\":{},"
         "\"input_items\":{}}",
         "\"input_items\" must be an array"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp_ship_rec_t rec;
        json_t *o;
        const char *why = read_one(cases[i].text, &rec, &o);
        cr_assert_not_null(why, "%s", cases[i].text);
        cr_assert_str_eq(why, cases[i].why);
        tg_buf_dispose(&rec.items);
        json_decref(o);
    }
}
