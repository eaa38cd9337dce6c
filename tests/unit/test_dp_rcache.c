/* test_dp_rcache.c: the per-worker cache of stored responses: tenant scoping, the byte bound
 * (least recently used out first), the lifetime, items found by id, acknowledgement, deletion. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "rcache.h"

static const char *const ITEMS[] = {"msg_a", "fc_b"};

Test(dp_rcache, a_record_is_found_by_its_tenant_and_id_only)
{
    dp_rcache_t *c = dp_rcache_create(1u << 20, 0);
    cr_assert_eq(dp_rcache_put(c, "t1", "resp_1", "{\"a\":1}", 7, ITEMS, 2, true, 0), 0);
    const dp_rentry_t *e = dp_rcache_get(c, "t1", "resp_1", 0);
    cr_assert_not_null(e);
    cr_assert_eq(e->len, 7);
    cr_assert_eq(memcmp(e->data, "{\"a\":1}", 7), 0);
    cr_assert(e->acked);
    cr_assert_null(dp_rcache_get(c, "t2", "resp_1", 0), "another tenant does not see it");
    cr_assert_null(dp_rcache_get(c, "t1", "resp_2", 0));
    dp_rcache_destroy(c);
}

Test(dp_rcache, put_of_the_same_id_replaces_the_record)
{
    dp_rcache_t *c = dp_rcache_create(1u << 20, 0);
    cr_assert_eq(dp_rcache_put(c, "t1", "r", "old", 3, NULL, 0, false, 0), 0);
    cr_assert_eq(dp_rcache_put(c, "t1", "r", "newer", 5, NULL, 0, true, 0), 0);
    cr_assert_eq(dp_rcache_count(c), 1);
    const dp_rentry_t *e = dp_rcache_get(c, "t1", "r", 0);
    cr_assert_eq(e->len, 5);
    cr_assert(e->acked);
    dp_rcache_destroy(c);
}

Test(dp_rcache, the_byte_bound_evicts_the_least_recently_used_first)
{
    char data[1000];
    memset(data, 'x', sizeof(data));
    /* room for about three entries of 1000 bytes and their bookkeeping */
    dp_rcache_t *c = dp_rcache_create(3 * 1000 + 3 * 400, 0);
    cr_assert_eq(dp_rcache_put(c, "t", "r1", data, sizeof(data), NULL, 0, true, 0), 0);
    cr_assert_eq(dp_rcache_put(c, "t", "r2", data, sizeof(data), NULL, 0, true, 0), 0);
    cr_assert_eq(dp_rcache_put(c, "t", "r3", data, sizeof(data), NULL, 0, true, 0), 0);
    cr_assert_not_null(dp_rcache_get(c, "t", "r1", 0)); /* r1 is now the most recent */
    cr_assert_eq(dp_rcache_put(c, "t", "r4", data, sizeof(data), NULL, 0, true, 0), 0);
    cr_assert_null(dp_rcache_get(c, "t", "r2", 0), "the least recently used went first");
    cr_assert_not_null(dp_rcache_get(c, "t", "r1", 0));
    cr_assert_not_null(dp_rcache_get(c, "t", "r3", 0));
    cr_assert_not_null(dp_rcache_get(c, "t", "r4", 0));
    cr_assert_leq(dp_rcache_bytes(c), 3 * 1000 + 3 * 400);
    dp_rcache_destroy(c);
}

Test(dp_rcache, a_record_larger_than_the_cache_is_not_kept)
{
    char data[5000];
    memset(data, 'x', sizeof(data));
    dp_rcache_t *c = dp_rcache_create(4096, 0);
    cr_assert_eq(dp_rcache_put(c, "t", "small", "{}", 2, NULL, 0, true, 0), 0);
    cr_assert_eq(dp_rcache_put(c, "t", "big", data, sizeof(data), NULL, 0, true, 0), TG_ETOOBIG);
    cr_assert_null(dp_rcache_get(c, "t", "big", 0));
    cr_assert_not_null(dp_rcache_get(c, "t", "small", 0), "a refused record evicts nothing");
    dp_rcache_destroy(c);
}

Test(dp_rcache, zero_bytes_keeps_nothing)
{
    dp_rcache_t *c = dp_rcache_create(0, 0);
    cr_assert_eq(dp_rcache_put(c, "t", "r", "{}", 2, NULL, 0, true, 0), TG_ETOOBIG);
    cr_assert_eq(dp_rcache_count(c), 0);
    dp_rcache_destroy(c);
}

Test(dp_rcache, an_entry_older_than_the_lifetime_is_gone)
{
    dp_rcache_t *c = dp_rcache_create(1u << 20, 1000);
    cr_assert_eq(dp_rcache_put(c, "t", "r", "{}", 2, ITEMS, 2, true, 5000), 0);
    cr_assert_not_null(dp_rcache_get(c, "t", "r", 6000));
    cr_assert_null(dp_rcache_find_item(c, "t", "msg_a", 6001));
    cr_assert_null(dp_rcache_get(c, "t", "r", 6001));
    cr_assert_eq(dp_rcache_count(c), 0);
    dp_rcache_destroy(c);
}

Test(dp_rcache, items_are_found_by_id_within_the_tenant)
{
    dp_rcache_t *c = dp_rcache_create(1u << 20, 0);
    const char *other[] = {"msg_a"};
    cr_assert_eq(dp_rcache_put(c, "t1", "r1", "1", 1, ITEMS, 2, true, 0), 0);
    cr_assert_eq(dp_rcache_put(c, "t2", "r2", "2", 1, other, 1, true, 0), 0);
    const dp_rentry_t *e = dp_rcache_find_item(c, "t1", "fc_b", 0);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->id, "r1");
    e = dp_rcache_find_item(c, "t1", "msg_a", 0);
    cr_assert_str_eq(e->id, "r1", "t2's item of the same id is not t1's");
    cr_assert_null(dp_rcache_find_item(c, "t2", "fc_b", 0));
    cr_assert_null(dp_rcache_find_item(c, "t1", "nope", 0));
    dp_rcache_destroy(c);
}

Test(dp_rcache, acked_and_deleted)
{
    dp_rcache_t *c = dp_rcache_create(1u << 20, 0);
    cr_assert_eq(dp_rcache_put(c, "t", "r", "{}", 2, NULL, 0, false, 0), 0);
    cr_assert_not(dp_rcache_get(c, "t", "r", 0)->acked);
    dp_rcache_set_acked(c, "t", "r");
    cr_assert(dp_rcache_get(c, "t", "r", 0)->acked);
    cr_assert(dp_rcache_del(c, "t", "r"));
    cr_assert_not(dp_rcache_del(c, "t", "r"));
    cr_assert_null(dp_rcache_get(c, "t", "r", 0));
    cr_assert_eq(dp_rcache_bytes(c), 0);
    dp_rcache_destroy(c);
}

Test(dp_rcache, many_entries_in_one_bucket_chain_stay_reachable)
{
    dp_rcache_t *c = dp_rcache_create(64u << 20, 0);
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "resp_%d", i);
        cr_assert_eq(dp_rcache_put(c, "t", id, "{}", 2, NULL, 0, true, 0), 0);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(id, sizeof(id), "resp_%d", i);
        cr_assert_not_null(dp_rcache_get(c, "t", id, 0), "%s", id);
    }
    cr_assert_eq(dp_rcache_count(c), 5000);
    dp_rcache_destroy(c);
}
