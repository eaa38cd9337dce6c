/* recommend.c: GET /api/v1/usage/recommendations (docs/api.md): for one tenant and period, the
 * spend and token volumes per model (route alias and the provider that served it) and what the
 * same volumes would have cost on the route's other targets and on catalog models with at least
 * the same capabilities, cheapest first, priced as real cost is. Read from the daily rollup by
 * prompt-size band (never from raw usage_events), so a report costs the same however many
 * requests it covers; the period is widened to whole UTC days. Anyone with a role in the tenant
 * reads it; another tenant answers 404 like an id that never existed. Runs on MHD worker threads.
 */
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "tg_time.h"

#include "tg_banned.h"

#define REC_DAY 86400
#define REC_DEFAULT_RANGE (30 * REC_DAY)
#define REC_RANGE_DAYS_MAX 400
#define REC_CATALOG_MAX 10 /* catalog alternatives per model */

/* What a group's volumes (cur's totals, or its prompt-size bands `b`) cost at a price row `x` (USD
 * per million tokens) with long-context tiers `lc` (json or NULL), by the data plane's rules of
 * real cost: cache reads, 5-minute and 1-hour cache writes and reasoning at their own rates
 * (defaulting to input, 5-minute writes and output), the rest at input and output. Without tiers
 * that is linear in the totals; with them, the sum over the bands of usage_volume_cost
 * (migrations/0013_catalog_rows_usage_bands.sql), each band at the tier its requests reach. Most
 * models have no tiers, and the linear form keeps a report over a big catalog fast. Exact
 * decimals, rounded to 12 places. */
/* clang-format off */
#define REC_LINEAR(x)                                                                              \
    "(greatest(cur.p - cur.c - cur.w5 - cur.w1, 0) * " x ".input_per_mtok + cur.c * coalesce(" x   \
    ".cached_input_per_mtok, " x ".input_per_mtok) + cur.w5 * coalesce(" x                         \
    ".cache_write_per_mtok, " x ".input_per_mtok) + cur.w1 * coalesce(" x                          \
    ".cache_write_1h_per_mtok, " x ".cache_write_per_mtok, " x ".input_per_mtok) + "               \
    "greatest(cur.o - cur.r, 0) * coalesce(" x ".output_per_mtok, 0) + cur.r * coalesce(" x        \
    ".reasoning_per_mtok, " x ".output_per_mtok, 0)) / 1000000"
#define REC_COST(x, lc)                                                                            \
    "trim_scale(round(CASE WHEN " lc " IS NULL THEN " REC_LINEAR(x) " ELSE (SELECT "               \
    "sum(usage_volume_cost(b.above, b.p, b.c, b.w5, b.w1, b.o, b.r, " x ".input_per_mtok, " x      \
    ".cached_input_per_mtok, " x ".output_per_mtok, " x ".cache_write_per_mtok, " x                \
    ".cache_write_1h_per_mtok, " x ".reasoning_per_mtok, " lc ")) FROM b WHERE b.alias = "         \
    "cur.alias AND b.provider = cur.provider) END, 12))"
/* clang-format on */

/* $1 tenant, $2 from and $3 to (unix seconds, whole days), $4 catalog alternatives per model. u:
 * the volumes per (alias, provider) in the period, from the daily rollup without the key (0008,
 * with cache writes since 0013); hi: the same per prompt-size band above 0, from the daily band
 * rollup (0013), which keeps only those; b: hi's bands and band 0, u less hi's; cur: the route
 * target that served them (the first of the route's targets on that provider) with its effective
 * model info (0012), the capabilities it has (need) and the route's own kind/vendor/model triples
 * (own), worked out once per model rather than once per catalog entry; lcx: the catalog's long-
 * context tiers, read once; cat: the catalog's priced chat models with their tiers, joined once. A
 * tier is never cheaper than its base prices (the catalog's rule), so a tiered model whose cost at
 * base prices is above the $4-th cheapest untiered one cannot be among the $4 cheapest: only the
 * others are priced band by band; the alternatives: the route's other priced targets (a catalog
 * price with its tiers), then the cheapest catalog chat models (other than the current) whose
 * capabilities include every one the current model has, and whose context window is no smaller.
 * Kept in SQL's own line breaks. */
/* clang-format off */
#define REC_SQL                                                                                    \
    "WITH hi AS MATERIALIZED (SELECT h.model AS alias, h.provider, h.above, "                      \
    "sum(h.prompt_tokens) AS p, sum(h.cached_tokens) AS c, sum(h.cache_write_tokens) AS w5, "      \
    "sum(h.cache_write_1h_tokens) AS w1, sum(h.completion_tokens) AS o, "                          \
    "sum(h.reasoning_tokens) AS r FROM usage_daily_bands h "                                       \
    "WHERE h.tenant_id = $1::uuid AND h.day >= to_timestamp($2::bigint) "                          \
    "AND h.day < to_timestamp($3::bigint) AND h.model <> '' AND h.above > 0 GROUP BY 1, 2, 3), "   \
    "u AS MATERIALIZED (SELECT h.model AS alias, h.provider, sum(h.requests) AS requests, "        \
    "sum(h.prompt_tokens) AS p, sum(h.cached_tokens) AS c, sum(h.cache_write_tokens) AS w5, "      \
    "sum(h.cache_write_1h_tokens) AS w1, sum(h.completion_tokens) AS o, "                          \
    "sum(h.reasoning_tokens) AS r, sum(h.cost_usd) AS cost FROM usage_daily_nokey h "              \
    "WHERE h.tenant_id = $1::uuid AND h.day >= to_timestamp($2::bigint) "                          \
    "AND h.day < to_timestamp($3::bigint) AND h.model <> '' GROUP BY 1, 2), "                      \
    "b AS MATERIALIZED (SELECT alias, provider, above, p, c, w5, w1, o, r FROM hi UNION ALL "      \
    "SELECT u.alias, u.provider, 0, u.p - coalesce(s.p, 0), u.c - coalesce(s.c, 0), "              \
    "u.w5 - coalesce(s.w5, 0), u.w1 - coalesce(s.w1, 0), u.o - coalesce(s.o, 0), "                 \
    "u.r - coalesce(s.r, 0) FROM u LEFT JOIN (SELECT alias, provider, sum(p) AS p, sum(c) AS c, "  \
    "sum(w5) AS w5, sum(w1) AS w1, sum(o) AS o, sum(r) AS r FROM hi GROUP BY 1, 2) s "             \
    "ON s.alias = u.alias AND s.provider = u.provider), "                                          \
    "cur AS (SELECT u.*, ro.id AS route_id, t.position, t.provider_id, "                           \
    "t.model AS upstream_model, i.info, pv.kind, pv.vendor, "                                      \
    "coalesce((SELECT jsonb_object_agg(k.key, k.value) FROM jsonb_each(i.info->'capabilities') k " \
    "WHERE k.value = 'true'::jsonb), '{}'::jsonb) AS need, "                                       \
    "ARRAY(SELECT yv.kind || '/' || yv.vendor || '/' || y.model FROM route_targets y "             \
    "JOIN provider_vendors yv ON yv.provider_id = y.provider_id WHERE y.route_id = ro.id) AS own " \
    "FROM u "                                                                                      \
    "LEFT JOIN routes ro ON ro.alias = u.alias AND ro.tenant_id IS NULL "                          \
    "LEFT JOIN LATERAL (SELECT * FROM route_targets x WHERE x.route_id = ro.id AND "               \
    "x.provider_id::text = u.provider ORDER BY x.position LIMIT 1) t ON true "                     \
    "LEFT JOIN route_target_info i ON i.route_id = t.route_id AND i.position = t.position "        \
    "LEFT JOIN provider_vendors pv ON pv.provider_id = t.provider_id), "                           \
    "lcx AS MATERIALIZED (SELECT * FROM catalog_long_context), "                                   \
    "cat AS MATERIALIZED (SELECT cm.*, lc.tiers FROM catalog_models cm LEFT JOIN lcx lc "          \
    "ON lc.kind = cm.kind AND lc.vendor = cm.vendor AND lc.model = cm.model "                      \
    "WHERE cm.mode = 'chat' AND cm.input_per_mtok IS NOT NULL "                                    \
    "AND jsonb_typeof(cm.capabilities) = 'object'), "                                              \
    "alt AS (SELECT cur.alias, cur.provider, 'route' AS source, "                                  \
    "x.provider_id::text AS provider_id, p.name AS provider_name, NULL::text AS kind, x.model, "   \
    REC_COST("x", "CASE WHEN x.price_source = 'catalog' THEN lc.tiers END") " AS cost "           \
    "FROM cur JOIN route_target_prices x ON x.route_id = cur.route_id "                            \
    "AND x.position <> cur.position AND x.price_source <> 'none' "                                 \
    "JOIN providers p ON p.id = x.provider_id "                                                    \
    "LEFT JOIN provider_vendors xv ON xv.provider_id = x.provider_id "                             \
    "LEFT JOIN lcx lc ON lc.kind = xv.kind AND lc.vendor = xv.vendor "                             \
    "AND lc.model = x.model "                                                                      \
    "UNION ALL "                                                                                   \
    "SELECT cur.alias, cur.provider, 'catalog', NULL, NULL, m.kind, m.model, m.cost "              \
    "FROM cur CROSS JOIN LATERAL (WITH c AS MATERIALIZED (SELECT cm.*, " REC_LINEAR("cm")          \
    " AS lin FROM cat cm WHERE cur.info IS NOT NULL "                                              \
    "AND NOT (cm.kind || '/' || cm.vendor || '/' || cm.model = ANY (cur.own)) "                    \
    "AND cm.capabilities @> cur.need "                                                             \
    "AND coalesce(cm.context_window, 0) >= "                                                       \
    "coalesce((cur.info->>'context_window')::bigint, 0)) "                                         \
    "SELECT c.kind, c.model, " REC_COST("c", "c.tiers") " AS cost FROM c "                         \
    "WHERE c.tiers IS NULL OR c.lin <= coalesce((SELECT d.lin FROM c d WHERE d.tiers IS NULL "     \
    "ORDER BY d.lin OFFSET $4::int - 1 LIMIT 1), 'Infinity'::numeric) "                            \
    "ORDER BY 3, c.kind, c.model LIMIT $4::int) m) "                                               \
    "SELECT json_build_object('tenant_id', $1::uuid, 'from', to_timestamp($2::bigint), "           \
    "'to', to_timestamp($3::bigint), 'models', coalesce(json_agg(json_build_object("               \
    "'model', cur.alias, 'provider_id', nullif(cur.provider, ''), "                                \
    "'upstream_model', cur.upstream_model, 'capabilities', cur.info->'capabilities', "             \
    "'context_window', cur.info->'context_window', 'requests', cur.requests, "                     \
    "'prompt_tokens', cur.p, 'cached_tokens', cur.c, 'cache_write_tokens', cur.w5, "               \
    "'cache_write_1h_tokens', cur.w1, 'completion_tokens', cur.o, 'reasoning_tokens', cur.r, "     \
    "'cost_usd', trim_scale(cur.cost), 'alternatives', coalesce((SELECT json_agg("                 \
    "json_build_object('source', a.source, 'provider_id', a.provider_id, "                         \
    "'provider', a.provider_name, 'kind', a.kind, 'model', a.model, 'cost_usd', a.cost, "          \
    "'savings_usd', trim_scale(cur.cost - a.cost)) ORDER BY a.cost, a.source DESC, a.model) "      \
    "FROM alt a WHERE a.alias = cur.alias AND a.provider = cur.provider), '[]'::json)) "           \
    "ORDER BY cur.cost DESC, cur.alias, cur.provider), '[]'::json)) FROM cur"
/* clang-format on */

void cp_api_usage_recommendations(cp_req_t *r)
{
    static const char *const params[] = {"tenant_id", "from", "to", NULL};
    const char *tenant_id;
    int64_t from = 0, to = tg_wall_ms() / 1000;
    bool has_from, has_to;
    if (cp__query_check(r, params, "tenant_id, from, to") != 0 ||
        cp__query_uuid(r, "tenant_id", &tenant_id) != 0 ||
        cp__query_time(r, "from", false, &from, &has_from) != 0 ||
        cp__query_time(r, "to", true, &to, &has_to) != 0)
        return;
    if (!tenant_id) {
        cp_reply_error(r, 400, "invalid_query", "tenant_id",
                       "tenant_id is required: recommendations are per tenant");
        return;
    }
    if (!has_from)
        from = to - REC_DEFAULT_RANGE;
    if (from >= to) {
        cp_reply_error(r, 400, "invalid_query", has_from ? "from" : "to",
                       has_to ? "from must be before to" : "from must be in the past");
        return;
    }
    if (to - from > (int64_t)REC_RANGE_DAYS_MAX * REC_DAY) {
        cp_reply_error(r, 400, "invalid_query", has_from ? "from" : "to",
                       "from and to must be at most %d days apart", REC_RANGE_DAYS_MAX);
        return;
    }
    if (cp__query_tenant(r, tenant_id) != 0)
        return;
    /* the daily rollup answers whole days */
    from -= ((from % REC_DAY) + REC_DAY) % REC_DAY;
    if (to % REC_DAY != 0)
        to += REC_DAY - ((to % REC_DAY) + REC_DAY) % REC_DAY;
    char from_s[24], to_s[24], lim[8];
    snprintf(from_s, sizeof(from_s), "%lld", (long long)from);
    snprintf(to_s, sizeof(to_s), "%lld", (long long)to);
    snprintf(lim, sizeof(lim), "%d", REC_CATALOG_MAX);
    const char *p[4] = {tenant_id, from_s, to_s, lim};
    /* one statement, longer than the 4095 bytes ISO C promises; GCC and Clang take it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
    PGresult *res = cp_db_exec(r->db, REC_SQL, 4, p);
#pragma GCC diagnostic pop
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    cp_reply_json_text(r, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
}
