/* fuzz_rstore.c: the stored-response records of the plane contract (docs/api.md "Data-plane
 * API") through both planes' readers: the data plane's, of a record fetched back from the control
 * plane (GET /dp/v1/responses/{id}, /dp/v1/response-items/{id}) or its spool or cache
 * (rrecord.h: the item ids it caches, an item by id, the input_items page), and the control
 * plane's, of the NDJSON body data planes POST to /dp/v1/responses (rstore_rec.h). Nothing may
 * crash, leak or hang, and what each accepts must hold what it promises:
 * - every cached item id is one the store takes and finds again in the record;
 * - a page is OpenAI's list shape, at most limit items, first_id/last_id its ends;
 * - a record the data plane builds (dp_rstore_record) from a response object and an input_items
 *   array is one the control plane takes, and both planes see the same item ids in it;
 * - a line the control plane reads is non-empty, without a newline or trailing CR or space, and
 *   a record it accepts has a valid id, a uuid tenant, a uuid or no key, and an ids literal {...}.
 *
 * Input: one selector byte, then:
 *   [0] bit 0 clear: the data plane: the query of the input_items request, a NUL byte, then the
 *       record (no NUL: the query "?limit=2&order=asc" and all of it the record)
 *   [0] bit 0 set: the control plane: all of it the NDJSON body
 * The seeds (corpus/fuzz_rstore) are records and batches as tests/integration/
 * responses_store.test.mjs ships them and the data plane makes them.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "rrecord.h"
#include "rstore.h"
#include "rstore_rec.h"
#include "tg_usage_event.h"

#define TENANT "0b9f6d2e-3c1a-4f5e-9d7c-2a8b6e4f1c3d"

static const char default_query[] = "/v1/responses/resp_1/input_items?limit=2&order=asc";

static void check_page(const json_t *rec, const char *q, size_t qn)
{
    tg_err_t err;
    tg_err_clear(&err);
    json_t *page = dp_rrecord_items_page(rec, q, qn, &err);
    if (!page) {
        FUZZ_CHECK(err.status == 400 || err.status == 500);
        FUZZ_CHECK(err.msg[0] != '\0');
        FUZZ_CHECK(err.status != 400 || err.param != NULL);
        return;
    }
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(page, "object")), "list") == 0);
    const json_t *data = json_object_get(page, "data");
    FUZZ_CHECK(json_is_array(data) && json_array_size(data) <= 100);
    FUZZ_CHECK(json_is_boolean(json_object_get(page, "has_more")));
    size_t n = json_array_size(data);
    const json_t *first = json_object_get(page, "first_id");
    const json_t *last = json_object_get(page, "last_id");
    FUZZ_CHECK(first && last);
    const json_t *id0 = n ? json_object_get(json_array_get(data, 0), "id") : NULL;
    const json_t *idn = n ? json_object_get(json_array_get(data, n - 1), "id") : NULL;
    FUZZ_CHECK(id0 ? json_equal(first, id0) : json_is_null(first));
    FUZZ_CHECK(idn ? json_equal(last, idn) : json_is_null(last));
    /* every item shown is one of the record's input items */
    const json_t *items = json_object_get(rec, "input_items");
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(data, i);
        bool found = false;
        for (size_t k = 0; !found && k < json_array_size(items); k++)
            found = json_array_get(items, k) == it;
        FUZZ_CHECK(found);
    }
    json_decref(page);
}

/* The ids literal {a,b} the control plane stores, as the list the data plane caches. */
static void check_same_ids(const char *lit, char **ids, size_t n)
{
    size_t len = strlen(lit);
    FUZZ_CHECK(len >= 2 && lit[0] == '{' && lit[len - 1] == '}');
    tg_buf_t want = TG_BUF_INIT(SIZE_MAX);
    FUZZ_CHECK(tg_buf_append(&want, "{", 1) == 0);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            FUZZ_CHECK(tg_buf_append(&want, ",", 1) == 0);
        FUZZ_CHECK(tg_buf_append(&want, ids[i], strlen(ids[i])) == 0);
    }
    FUZZ_CHECK(tg_buf_append(&want, "}", 1) == 0);
    FUZZ_CHECK(tg_mem_eq(want.base, want.len, lit, len));
    tg_buf_dispose(&want);
}

/* A record the data plane makes from this one's response and input items: the control plane
 * takes it, and both see the same items. */
static void check_roundtrip(const json_t *rec)
{
    const json_t *resp = json_object_get(rec, "response");
    const json_t *items = json_object_get(rec, "input_items");
    if (!json_is_object(resp) || !json_is_array(items))
        return;
    char *r = json_dumps(resp, JSON_COMPACT);
    char *i = json_dumps(items, JSON_COMPACT);
    FUZZ_CHECK(r && i);
    tg_buf_t b = TG_BUF_INIT(SIZE_MAX);
    FUZZ_CHECK(dp_rstore_record(&b, "resp_fuzz", TENANT, NULL, 1764072000, r, strlen(r), i,
                                strlen(i)) == 0);
    char **ids;
    size_t n = dp_rrecord_item_ids(b.base, b.len, &ids, NULL);
    json_t *o = json_loadb(b.base, b.len, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(o));
    cp_ship_rec_t sr;
    memset(&sr, 0, sizeof(sr));
    const char *why = cp_ship_read_record(o, &sr);
    /* only a list of ids longer than the control plane's bound is refused */
    FUZZ_CHECK(!why || strcmp(why, "too many items") == 0);
    if (!why)
        check_same_ids(sr.items.base, ids, n);
    tg_buf_dispose(&sr.items);
    json_decref(o);
    for (size_t k = 0; k < n; k++)
        free(ids[k]);
    free(ids);
    tg_buf_dispose(&b);
    free(r);
    free(i);
}

static void data_plane(const char *p, size_t n)
{
    const char *nul = memchr(p, '\0', n);
    const char *q = nul ? p : default_query;
    size_t qn = nul ? (size_t)(nul - p) : sizeof(default_query) - 1;
    const char *rec = nul ? nul + 1 : p;
    size_t rn = nul ? n - qn - 1 : n;

    char **ids;
    size_t nids = dp_rrecord_item_ids(rec, rn, &ids, NULL);
    json_t *o = json_loadb(rec, rn, 0, NULL);
    for (size_t i = 0; i < nids; i++) {
        FUZZ_CHECK(dp_rrecord_id_ok(ids[i], strlen(ids[i])));
        json_t *it = dp_rrecord_item(o, ids[i]);
        FUZZ_CHECK(it != NULL);
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(it, "id")), ids[i]) == 0);
        free(ids[i]);
    }
    free(ids);
    if (json_is_object(o)) {
        check_page(o, q, qn);
        check_roundtrip(o);
    }
    json_decref(o);
}

static void control_plane(const char *p, size_t n)
{
    size_t pos = 0, len;
    long long lineno = 0, last = 0;
    const char *line;
    while (cp_ship_next_line(p, n, &pos, &lineno, &line, &len)) {
        FUZZ_CHECK(len > 0 && line >= p && line + len <= p + n);
        FUZZ_CHECK(memchr(line, '\n', len) == NULL);
        FUZZ_CHECK(line[len - 1] != '\r' && line[len - 1] != ' ');
        FUZZ_CHECK(lineno > last);
        last = lineno;
        json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        if (!o)
            continue;
        cp_ship_rec_t rec;
        memset(&rec, 0, sizeof(rec));
        const char *why = cp_ship_read_record(o, &rec);
        if (!why) {
            FUZZ_CHECK(cp_rstore_id_ok(rec.id, strlen(rec.id)));
            FUZZ_CHECK(tg_usage_is_uuid(rec.tenant));
            FUZZ_CHECK(!rec.key || tg_usage_is_uuid(rec.key));
            FUZZ_CHECK(rec.created[0] >= '0' && rec.created[0] <= '9');
            size_t il = strlen(rec.items.base);
            FUZZ_CHECK(il + 1 == rec.items.len && rec.items.base[0] == '{' &&
                       rec.items.base[il - 1] == '}');
        } else {
            FUZZ_CHECK(why[0] != '\0');
        }
        tg_buf_dispose(&rec.items);
        json_decref(o);
    }
    FUZZ_CHECK(pos >= n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1)
        control_plane(p, n);
    else
        data_plane(p, n);
    return 0;
}
