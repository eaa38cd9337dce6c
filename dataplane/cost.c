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

static bool has_budget(const tg_limits_t *l)
{
    for (int p = 0; p < TG_NPERIODS; p++)
        if (l->budget_pusd[p] >= 0)
            return true;
    return false;
}

int dp_cost_plan_unpriced(dp_gate_t *g, tg_err_t *err)
{
    if (!g->key || g->nplan == 0 ||
        (!has_budget(&g->key->lim) && !has_budget(&g->key->tenant->lim)))
        return 0;
    const dp_plan_entry_t *first = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < g->nplan; i++) {
        const dp_plan_entry_t *e = &g->plan[i];
        if (dp_cost_unpriced(e->target) && !e->route->allow_unpriced) {
            first = first ? first : e;
            continue;
        }
        g->plan[kept++] = *e;
    }
    g->nplan = kept;
    if (kept > 0)
        return 0;
    tg_err_set(err, TG_EFORBIDDEN, 403,
               "the model \"%.200s\" has no price (\"%.128s\" on provider \"%.128s\" has no "
               "admin price and no model catalog entry) and this key or its tenant has a budget, "
               "which could not count its cost; an admin can price it, or allow unpriced "
               "traffic on the route (allow_unpriced)",
               first->route->alias, first->target->model, first->target->provider->id);
    tg_err_code(err, "model_unpriced");
    err->type = "invalid_request_error";
    err->param = "model";
    return TG_EFORBIDDEN;
}
