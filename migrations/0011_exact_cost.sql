-- 0011_exact_cost.sql: exact cost (docs/catalog.md, "Exact cost").
-- 1. A route chooses whether traffic to a target without a price (no admin price, no catalog
--    entry) is served when the key or its tenant has a budget. Off by default: a budget that
--    silently lets free traffic through is worse than a clear refusal.
-- 2. Usage events record the cache writes by lifetime (parts of prompt_tokens) and whether the
--    target was unpriced, so that every event's cost can be recomputed from its own row.
-- 3. The snapshot's catalog prices carry the catalog's long-context tiers.

ALTER TABLE routes ADD COLUMN allow_unpriced boolean NOT NULL DEFAULT false;

ALTER TABLE usage_events
    ADD COLUMN cache_write_tokens    bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN unpriced              boolean NOT NULL DEFAULT false;

-- the long-context tiers of each model of the effective catalog, as the snapshot writes them:
-- a tier prices a whole request whose input tokens are more than above_input_tokens
CREATE VIEW catalog_long_context AS
    SELECT m->>'kind' AS kind, coalesce(m->>'vendor', '') AS vendor, m->>'model' AS model,
           json_agg(json_strip_nulls(json_build_object(
               'above_input_tokens', (t->>'from_input_tokens')::bigint,
               'input_per_mtok', (t->>'input')::numeric,
               'cached_input_per_mtok', (t->>'cached_input')::numeric,
               'output_per_mtok', coalesce((t->>'output')::numeric, 0),
               'cache_write_per_mtok', (t#>>'{cache_write,5m}')::numeric,
               'cache_write_1h_per_mtok', (t#>>'{cache_write,1h}')::numeric,
               'reasoning_per_mtok', (t->>'reasoning')::numeric))
               ORDER BY (t->>'from_input_tokens')::bigint) AS tiers
    FROM catalog_effective c, jsonb_array_elements(c.doc->'models') m,
         jsonb_array_elements(CASE WHEN jsonb_typeof(m->'long_context') = 'array'
                                   THEN m->'long_context' ELSE '[]' END) t
    GROUP BY 1, 2, 3;

-- as in 0009, with each catalog price's long-context tiers (at most the data plane's 4)
CREATE OR REPLACE FUNCTION snapshot_prices(inc uuid[], served uuid[]) RETURNS json LANGUAGE sql
STABLE AS $$
    SELECT coalesce(json_agg(json_strip_nulls(json_build_object(
               'provider', q.provider_id, 'model', q.model, 'input_per_mtok', q.i,
               'cached_input_per_mtok', q.ci, 'output_per_mtok', q.o,
               'cache_write_per_mtok', q.w5, 'cache_write_1h_per_mtok', q.w1,
               'reasoning_per_mtok', q.r, 'long_context', q.lc))
               ORDER BY q.provider_id, q.model), '[]')
    FROM (SELECT p.provider_id, p.model, p.input_per_mtok AS i,
                 coalesce(p.cached_input_per_mtok, p.input_per_mtok) AS ci,
                 p.output_per_mtok AS o, NULL::numeric AS w5, NULL::numeric AS w1,
                 NULL::numeric AS r, NULL::json AS lc
            FROM prices p
           WHERE p.provider_id = ANY (inc) AND p.input_per_mtok <= 1000000
             AND p.output_per_mtok <= 1000000 AND coalesce(p.cached_input_per_mtok, 0) <= 1000000
          UNION ALL
          SELECT x.provider_id, x.model, x.input_per_mtok,
                 coalesce(x.cached_input_per_mtok, x.input_per_mtok), x.output_per_mtok,
                 x.cache_write_per_mtok, x.cache_write_1h_per_mtok, x.reasoning_per_mtok,
                 CASE WHEN json_array_length(lc.tiers) <= 4 THEN lc.tiers END
            FROM (SELECT DISTINCT ON (provider_id, model) * FROM route_target_prices
                   WHERE price_source = 'catalog' AND route_id = ANY (served)
                     AND provider_id = ANY (inc)) x
            JOIN provider_vendors pv ON pv.provider_id = x.provider_id
            LEFT JOIN catalog_long_context lc ON lc.kind = pv.kind AND lc.vendor = pv.vendor
                 AND lc.model = x.model) q
$$;
