/* cost.h: what a request costs under its target's price (every rule of tg_price_usage_cost), and
 * the rule for targets without a price under a budget (docs/catalog.md). Pure; loop thread. */
#ifndef DP_COST_H
#define DP_COST_H

#include <stdbool.h>

#include "gate.h"
#include "tg_err.h"
#include "tg_snap.h"
#include "usage.h"

/* The cost in picodollars of a provider's usage on target t; 0 when t has no price. */
int64_t dp_cost_of(const tg_target_t *t, const dp_usage_t *u);
/* Whether requests to t are unpriced: no admin price and no catalog entry. */
bool dp_cost_unpriced(const tg_target_t *t);
/* Takes out of the plan the unpriced targets whose route does not allow unpriced traffic, when
 * the key or its tenant has a budget (a budget must never let free traffic through unseen). When
 * nothing is left: 403 model_unpriced in err and TG_EFORBIDDEN; else 0. */
int dp_cost_plan_unpriced(dp_gate_t *g, tg_err_t *err) TG_WUR;

#endif
