/* cost.h: what a request costs under its target's price (every rule of tg_price_usage_cost), and
 * whether a target is priced at all (docs/catalog.md). Pure; loop thread. */
#ifndef DP_COST_H
#define DP_COST_H

#include <stdbool.h>

#include "tg_err.h"
#include "tg_snap.h"
#include "usage.h"

/* The cost in picodollars of a provider's usage on target t; 0 when t has no price. */
int64_t dp_cost_of(const tg_target_t *t, const dp_usage_t *u);
/* Whether requests to t are unpriced: no admin price and no catalog entry. */
bool dp_cost_unpriced(const tg_target_t *t);

#endif
