/* test_dp_cache.c: the response cache: keys (tenant-scoped, order-insensitive), TTL, max-age,
 * LRU eviction under the byte bound. */
#include <criterion/criterion.h>
#include <string.h>

#include "cache.h"
#include "reqbody.h"

static void key_of(const char *tenant, const char *json, uint8_t key[TG_SHA256_LEN])
{
    json_t *b = json_loads(json, 0, NULL);
    cr_assert_not_null(b);
    cr_assert_eq(dp_cache_key(tenant, DP_EP_CHAT, "alias", b, key), 0);
    json_decref(b);
}

static const dp_usage_t U = {.prompt = 10, .completion = 5, .total = 15, .present = true};

Test(dp_cache, key_ignores_member_order_but_not_tenant_or_content)
{
    uint8_t a[32], b[32], c[32], d[32];
    key_of("t1", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", a);
    key_of("t1", "{\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],\"model\":\"m\"}", b);
    key_of("t2", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", c);
    key_of("t1", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", d);
    cr_assert_eq(memcmp(a, b, 32), 0);
    cr_assert_neq(memcmp(a, c, 32), 0, "another tenant has another key");
    cr_assert_neq(memcmp(a, d, 32), 0);
}

Test(dp_cache, get_returns_a_stored_answer_until_it_expires)
{
    dp_cache_t *c = dp_cache_create(1u << 20);
    uint8_t k[32];
    key_of("t1", "{\"x\":1}", k);
    cr_assert_null(dp_cache_get(c, k, 1000, -1));
    cr_assert_eq(dp_cache_put(c, k, "{\"ok\":1}", 8, false, "p", "m", &U, 1000, 5000), 0);
    const dp_cache_entry_t *e = dp_cache_get(c, k, 2000, -1);
    cr_assert_not_null(e);
    cr_assert_eq(e->len, 8);
    cr_assert_eq(memcmp(e->body, "{\"ok\":1}", 8), 0);
    cr_assert_str_eq(e->provider, "p");
    cr_assert_eq(e->usage.total, 15);
    cr_assert_null(dp_cache_get(c, k, 2000, 500), "older than the client's max-age");
    cr_assert_not_null(dp_cache_get(c, k, 2000, 1000));
    cr_assert_null(dp_cache_get(c, k, 6000, -1), "expired");
    cr_assert_eq(dp_cache_entries(c), 0, "an expired entry is dropped");
    cr_assert_eq(dp_cache_bytes(c), 0);
    dp_cache_destroy(c);
}

Test(dp_cache, the_least_recently_used_goes_first_when_full)
{
    char body[1000];
    memset(body, 'x', sizeof(body));
    dp_cache_t *c = dp_cache_create(12000); /* room for 9 of these */
    uint8_t k[12][32];
    for (int i = 0; i < 12; i++) {
        char j[32];
        snprintf(j, sizeof(j), "{\"n\":%d}", i);
        key_of("t", j, k[i]);
    }
    for (int i = 0; i < 8; i++)
        cr_assert_eq(dp_cache_put(c, k[i], body, sizeof(body), false, "p", "m", &U, 0, 60000), 0);
    cr_assert_not_null(dp_cache_get(c, k[0], 1, -1)); /* 0 is now the most recent */
    for (int i = 8; i < 12; i++)
        cr_assert_eq(dp_cache_put(c, k[i], body, sizeof(body), false, "p", "m", &U, 0, 60000), 0);
    cr_assert_leq(dp_cache_bytes(c), 12000);
    cr_assert_eq(dp_cache_entries(c), 9);
    cr_assert_not_null(dp_cache_get(c, k[0], 2, -1), "recently used survives");
    cr_assert_null(dp_cache_get(c, k[1], 2, -1), "least recently used was evicted");
    cr_assert_not_null(dp_cache_get(c, k[11], 2, -1));
    dp_cache_destroy(c);
}

Test(dp_cache, an_answer_too_big_for_the_cache_is_not_stored)
{
    dp_cache_t *c = dp_cache_create(8000);
    uint8_t k[32];
    key_of("t", "{}", k);
    static char big[2000];
    cr_assert_eq(dp_cache_put(c, k, big, sizeof(big), false, "p", "m", &U, 0, 1000), TG_ETOOBIG);
    cr_assert_eq(dp_cache_entries(c), 0);
    dp_cache_t *off = dp_cache_create(0);
    cr_assert_eq(dp_cache_put(off, k, "x", 1, false, "p", "m", &U, 0, 1000), TG_ETOOBIG);
    dp_cache_destroy(off);
    dp_cache_destroy(c);
}

Test(dp_cache, putting_the_same_key_replaces)
{
    dp_cache_t *c = dp_cache_create(1u << 20);
    uint8_t k[32];
    key_of("t", "{}", k);
    cr_assert_eq(dp_cache_put(c, k, "a", 1, false, "p", "m", &U, 0, 1000), 0);
    cr_assert_eq(dp_cache_put(c, k, "bb", 2, true, "p", "m", &U, 0, 1000), 0);
    cr_assert_eq(dp_cache_entries(c), 1);
    const dp_cache_entry_t *e = dp_cache_get(c, k, 1, -1);
    cr_assert_eq(e->len, 2);
    cr_assert(e->stream);
    dp_cache_destroy(c);
}
