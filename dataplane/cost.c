/* cost.c: a request's cost and the unpriced-target rule (cost.h). */
#include "cost.h"

#include <string.h>

#include "tg_banned.h"

int64_t dp_cost_of(const tg_target_t *t, const dp_usage_t *u)
{
    tg_cost_usage_t c = {
        .prompt = u->prompt,
        .cached = u->cached,
        .cache_write = u->cache_write,
        .cache_write_1h = u->cache_write_1h,
        .completion = u->completion,
        .reasoning = u->reasoning,
    };
    return tg_price_usage_cost(&t->price, &c);
}

bool dp_cost_unpriced(const tg_target_t *t)
{
    return !t->price.set;
}
