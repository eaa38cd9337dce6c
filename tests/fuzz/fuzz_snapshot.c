/* fuzz_snapshot.c: tg_snap_parse on arbitrary documents; every accepted snapshot must answer
 * its own lookups and free cleanly. */
#include <string.h>

#include "fuzz.h"
#include "tg_snap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_snap_t *s = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    int rc = tg_snap_parse((const char *)data, size, &s, &err);
    if (rc != 0) {
        FUZZ_CHECK(s == NULL);
        FUZZ_CHECK(err.status == 400 || err.status == 500);
        FUZZ_CHECK(err.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(s != NULL);
    FUZZ_CHECK(tg_snap_ref(s) == s);
    for (size_t i = 0; i < s->nkeys; i++) {
        const tg_key_t *k = &s->keys[i];
        FUZZ_CHECK(tg_snap_find_key(s, k->hash) == k);
        FUZZ_CHECK(k->tenant != NULL);
        for (size_t j = 0; j < k->nroutes; j++)
            FUZZ_CHECK(tg_key_allows(k, k->routes[j]));
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        const tg_route_t *r = &s->routes[i];
        FUZZ_CHECK(tg_snap_find_route(s, r->alias, strlen(r->alias)) == r);
        FUZZ_CHECK(r->ntargets > 0);
        for (size_t t = 0; t < r->ntargets; t++) {
            FUZZ_CHECK(r->targets[t].provider != NULL);
            FUZZ_CHECK(tg_price_cost(&r->targets[t].price, 1000, 100, 1000) >= 0);
            FUZZ_CHECK(tg_price_cost(&r->targets[t].price, INT64_MAX, 0, INT64_MAX) >= 0);
        }
    }
    for (size_t i = 0; i < s->nproviders; i++) {
        const tg_provider_t *p = &s->providers[i];
        size_t n = strlen(p->base_url);
        FUZZ_CHECK(n > 0 && p->base_url[n - 1] != '/');
    }
    tg_snap_unref(s);
    tg_snap_unref(s);
    return 0;
}
