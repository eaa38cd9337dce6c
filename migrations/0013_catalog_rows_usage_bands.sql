-- 0013_catalog_rows_usage_bands.sql: the model catalog as rows, so that prices and model info stay
-- fast with a big catalog (docs/catalog.md, "How it is applied"); and a daily usage rollup by
-- prompt size, so that cost recommendations price cache writes and long-context tiers the way a
-- request's real cost does (docs/api.md, "Cost recommendations").
--
-- 1. catalog_models, catalog_long_context and provider_vendors (0009, 0011) expanded the
--    effective catalog's jsonb document on every use: every route target's price or info read all
--    of it again (route_target_prices, route_target_info), and each provider's vendor read its
--    `vendors` twice. With 2,000 models and 900 route targets, GET /api/v1/routes took 0.5 s and a
--    snapshot build 2.9 s (bench/catalog/run.mjs). Each catalog is now also stored as one row per
--    model and one per vendor, written once by a trigger when it is stored (model_catalogs is
--    only ever inserted into), and the three views read the effective catalog's rows through an
--    index, with the same columns and the same answers as before.

CREATE TABLE catalog_model_rows (
    catalog_id              bigint NOT NULL REFERENCES model_catalogs (id) ON DELETE CASCADE,
    ord                     bigint NOT NULL, -- position in the file's models
    kind                    text,
    vendor                  text NOT NULL,
    model                   text,
    mode                    text,
    context_window          bigint,
    max_output_tokens       bigint,
    input_per_mtok          numeric,
    cached_input_per_mtok   numeric,
    output_per_mtok         numeric,
    cache_write_per_mtok    numeric,
    cache_write_1h_per_mtok numeric,
    reasoning_per_mtok      numeric,
    capabilities            jsonb,
    source                  text,
    read_on                 text,
    -- the long-context tiers as the snapshot writes them (0011's catalog_long_context); NULL: none
    long_context            json,
    PRIMARY KEY (catalog_id, ord)
);
CREATE INDEX catalog_model_rows_model ON catalog_model_rows (catalog_id, model, kind, vendor);

CREATE TABLE catalog_vendor_rows (
    catalog_id       bigint NOT NULL REFERENCES model_catalogs (id) ON DELETE CASCADE,
    vendor           text NOT NULL,
    kind             text,
    hosts            jsonb,
    default_for_kind boolean,
    PRIMARY KEY (catalog_id, vendor)
);

-- as in 0009, with each target's catalog entry looked up by its model through the index (a
-- lateral lookup: a join left to the planner could match on kind and vendor alone and filter
-- hundreds of entries per target)
CREATE OR REPLACE VIEW route_target_prices AS
    SELECT t.route_id, t.position, t.provider_id, t.model,
           CASE WHEN pr.provider_id IS NOT NULL THEN 'admin'
                WHEN cm.model IS NOT NULL THEN 'catalog' ELSE 'none' END AS price_source,
           coalesce(pr.input_per_mtok, cm.input_per_mtok) AS input_per_mtok,
           CASE WHEN pr.provider_id IS NOT NULL THEN pr.cached_input_per_mtok
                ELSE cm.cached_input_per_mtok END AS cached_input_per_mtok,
           coalesce(pr.output_per_mtok,
                    CASE WHEN cm.model IS NOT NULL THEN coalesce(cm.output_per_mtok, 0) END)
               AS output_per_mtok,
           CASE WHEN pr.provider_id IS NULL THEN cm.cache_write_per_mtok END AS cache_write_per_mtok,
           CASE WHEN pr.provider_id IS NULL THEN cm.cache_write_1h_per_mtok END
               AS cache_write_1h_per_mtok,
           CASE WHEN pr.provider_id IS NULL THEN cm.reasoning_per_mtok END AS reasoning_per_mtok
    FROM route_targets t
    JOIN provider_vendors pv ON pv.provider_id = t.provider_id
    LEFT JOIN prices pr ON pr.provider_id = t.provider_id AND pr.model = t.model
    LEFT JOIN LATERAL (SELECT * FROM catalog_models m WHERE m.model = t.model AND m.kind = pv.kind
                          AND m.vendor = pv.vendor AND m.input_per_mtok IS NOT NULL
                        LIMIT 1) cm ON true;

-- 2. Every long-context threshold of every catalog stored (a tier prices a request whose input
--    tokens are more than `above`): the boundaries of usage_daily_bands' prompt-size bands.
CREATE TABLE usage_prompt_bounds (above bigint PRIMARY KEY);

-- one catalog document's rows and thresholds; the casts are 0009's and 0011's
CREATE FUNCTION catalog_rows_fill(cid bigint, doc jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO catalog_model_rows
    SELECT cid, e.ord, m->>'kind', coalesce(m->>'vendor', ''), m->>'model', m->>'mode',
           (m->>'context_window')::bigint, (m->>'max_output_tokens')::bigint,
           (m#>>'{prices,input}')::numeric, (m#>>'{prices,cached_input}')::numeric,
           (m#>>'{prices,output}')::numeric, (m#>>'{prices,cache_write,5m}')::numeric,
           (m#>>'{prices,cache_write,1h}')::numeric, (m#>>'{prices,reasoning}')::numeric,
           m->'capabilities', m->>'source', m->>'read_on',
           (SELECT json_agg(json_strip_nulls(json_build_object(
                       'above_input_tokens', (t->>'from_input_tokens')::bigint,
                       'input_per_mtok', (t->>'input')::numeric,
                       'cached_input_per_mtok', (t->>'cached_input')::numeric,
                       'output_per_mtok', coalesce((t->>'output')::numeric, 0),
                       'cache_write_per_mtok', (t#>>'{cache_write,5m}')::numeric,
                       'cache_write_1h_per_mtok', (t#>>'{cache_write,1h}')::numeric,
                       'reasoning_per_mtok', (t->>'reasoning')::numeric))
                       ORDER BY (t->>'from_input_tokens')::bigint)
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(m->'long_context') = 'array'
                                             THEN m->'long_context' ELSE '[]' END) t)
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(doc->'models') = 'array'
                                   THEN doc->'models' ELSE '[]' END) WITH ORDINALITY e(m, ord);
    INSERT INTO catalog_vendor_rows
    SELECT cid, v.key, v.value->>'kind', v.value->'hosts', (v.value->>'default_for_kind')::boolean
    FROM jsonb_each(CASE WHEN jsonb_typeof(doc->'vendors') = 'object'
                         THEN doc->'vendors' ELSE '{}' END) v;
    INSERT INTO usage_prompt_bounds (above)
    SELECT DISTINCT (t->>'above_input_tokens')::bigint
    FROM catalog_model_rows r, json_array_elements(r.long_context) t
    WHERE r.catalog_id = cid AND r.long_context IS NOT NULL
      AND (t->>'above_input_tokens')::bigint >= 0
    ON CONFLICT DO NOTHING;
$$;

CREATE FUNCTION catalog_rows_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_rows_fill(NEW.id, NEW.doc);
    RETURN NULL;
END
$$;
CREATE TRIGGER model_catalogs_rows AFTER INSERT ON model_catalogs
    FOR EACH ROW EXECUTE FUNCTION catalog_rows_on_insert();
GRANT EXECUTE ON FUNCTION catalog_rows_fill(bigint, jsonb) TO tollgate_app;
GRANT EXECUTE ON FUNCTION catalog_rows_on_insert() TO tollgate_app;

SELECT catalog_rows_fill(id, doc) FROM model_catalogs ORDER BY id;
ANALYZE catalog_model_rows;
ANALYZE catalog_vendor_rows;

-- the same columns as 0009's, from the effective catalog's rows
CREATE OR REPLACE VIEW catalog_models AS
    SELECT r.kind, r.vendor, r.model, r.mode, r.context_window, r.max_output_tokens,
           r.input_per_mtok, r.cached_input_per_mtok, r.output_per_mtok, r.cache_write_per_mtok,
           r.cache_write_1h_per_mtok, r.reasoning_per_mtok, r.capabilities, r.source, r.read_on
    FROM catalog_model_rows r WHERE r.catalog_id = (SELECT id FROM catalog_effective);

-- as in 0011 (one row per kind, vendor and model; the file has no duplicates, and the first
-- wins if an older one had)
CREATE OR REPLACE VIEW catalog_long_context AS
    SELECT DISTINCT ON (r.kind, r.vendor, r.model) r.kind, r.vendor, r.model,
           r.long_context AS tiers
    FROM catalog_model_rows r
    WHERE r.catalog_id = (SELECT id FROM catalog_effective) AND r.long_context IS NOT NULL
    ORDER BY r.kind, r.vendor, r.model, r.ord;

-- as in 0009, from the effective catalog's vendor rows
CREATE OR REPLACE VIEW provider_vendors AS
    SELECT p.id AS provider_id, p.kind,
           CASE WHEN p.kind <> 'openai' THEN '' ELSE coalesce(
               (SELECT v.vendor FROM catalog_vendor_rows v
                 WHERE v.catalog_id = (SELECT id FROM catalog_effective) AND v.kind = p.kind
                   AND v.hosts ?
                       lower(substring(p.base_url FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)'))
                 ORDER BY v.vendor LIMIT 1),
               (SELECT v.vendor FROM catalog_vendor_rows v
                 WHERE v.catalog_id = (SELECT id FROM catalog_effective) AND v.kind = p.kind
                   AND v.default_for_kind
                 ORDER BY v.vendor LIMIT 1), '') END AS vendor
    FROM providers p;

-- 3. Token volumes per day, tenant, model (alias), provider and prompt-size band: `above` is the
--    highest threshold of usage_prompt_bounds (when the event was stored) that the event's
--    prompt_tokens are more than, 0 when none. Every request of a band passes exactly the tiers
--    whose threshold is at most `above`, so that the volumes of a band can be priced with the
--    tier they reach, as each request was. POST /dp/v1/usage adds each new event of a tenant
--    whose band is above 0 here, in the statement that inserts it (controlplane/ingest.c), like
--    the other rollups. Most prompts are below every threshold: band 0 is not kept here but read
--    as usage_daily_nokey's volumes (which now keep cache writes too) less the other bands', so
--    that such an event costs ingestion no row of its own (bench/RESULTS.md, "After the band
--    rollup"). The backfill below also writes band 0 rows for the events stored before this
--    migration; nothing reads them.
CREATE TABLE usage_daily_bands (
    day                   timestamptz NOT NULL,
    tenant_id             uuid NOT NULL,
    model                 text NOT NULL DEFAULT '',
    provider              text NOT NULL DEFAULT '',
    above                 bigint NOT NULL DEFAULT 0,
    requests              bigint NOT NULL DEFAULT 0,
    prompt_tokens         bigint NOT NULL DEFAULT 0,
    cached_tokens         bigint NOT NULL DEFAULT 0,
    cache_write_tokens    bigint NOT NULL DEFAULT 0,
    cache_write_1h_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens     bigint NOT NULL DEFAULT 0,
    reasoning_tokens      bigint NOT NULL DEFAULT 0,
    cost_usd              numeric(24, 12) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, model, provider, above)
);

-- The band of a prompt of n input tokens.
CREATE FUNCTION usage_prompt_band(n bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT max(above) FROM usage_prompt_bounds WHERE above < n), 0)
$$;
GRANT EXECUTE ON FUNCTION usage_prompt_band(bigint) TO tollgate_app;

-- What token volumes cost in USD under a price (USD per million tokens, the members of
-- route_target_prices or catalog_models) and its long-context tiers (catalog_long_context's
-- json) for a band `above`: the rules of the data plane's tg_price_usage_cost (docs/catalog.md,
-- "Exact cost"): the highest tier whose threshold is at most `above` (every request of the band
-- is more than it) prices all the band's tokens; cache reads, 5-minute and 1-hour writes and
-- reasoning at their own rates, defaulting to the input (1-hour writes to 5-minute ones) and
-- output rates; the rest of the input at input, of the output at output. Exact decimals.
CREATE FUNCTION usage_volume_cost(above bigint, p numeric, c numeric, w5 numeric, w1 numeric,
                                  o numeric, r numeric, i numeric, ci numeric, op numeric,
                                  cw numeric, cw1 numeric, rp numeric, tiers json)
RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
    SELECT (greatest(p - c - w5 - w1, 0) * t.i + c * coalesce(t.ci, t.i)
            + w5 * coalesce(t.cw, t.i) + w1 * coalesce(t.cw1, t.cw, t.i)
            + greatest(o - r, 0) * coalesce(t.op, 0) + r * coalesce(t.rp, t.op, 0)) / 1000000
    FROM (SELECT -1::bigint AS a, i, ci, op, cw, cw1, rp
          UNION ALL
          SELECT (e->>'above_input_tokens')::bigint, (e->>'input_per_mtok')::numeric,
                 (e->>'cached_input_per_mtok')::numeric, (e->>'output_per_mtok')::numeric,
                 (e->>'cache_write_per_mtok')::numeric, (e->>'cache_write_1h_per_mtok')::numeric,
                 (e->>'reasoning_per_mtok')::numeric
            FROM json_array_elements(coalesce(tiers, '[]'::json)) e
           WHERE (e->>'above_input_tokens')::bigint <= above
          ORDER BY 1 DESC LIMIT 1) t
$$;
GRANT EXECUTE ON FUNCTION usage_volume_cost(bigint, numeric, numeric, numeric, numeric, numeric,
                                            numeric, numeric, numeric, numeric, numeric, numeric,
                                            numeric, json) TO tollgate_app;

-- Cache writes per day, tenant, model and provider, in the rollup without the key, so that
-- band 0 can be read from it: the rest of the rollup's volumes are there since 0008. (IF NOT
-- EXISTS, and the backfill below sets rather than adds, so that a test can take back the rest of
-- this migration and apply it again.)
ALTER TABLE usage_daily_nokey ADD COLUMN IF NOT EXISTS cache_write_tokens bigint NOT NULL DEFAULT 0,
                              ADD COLUMN IF NOT EXISTS cache_write_1h_tokens bigint NOT NULL DEFAULT 0;

-- Backfill from the events stored so far (with the thresholds of the catalogs stored so far).
-- Migrations run before the control plane serves; usage_events is locked against writers
-- meanwhile so that no event lands between the copy and the first ingest that keeps this rollup.
LOCK TABLE usage_events IN SHARE MODE;
INSERT INTO usage_daily_bands (day, tenant_id, model, provider, above, requests, prompt_tokens,
                               cached_tokens, cache_write_tokens, cache_write_1h_tokens,
                               completion_tokens, reasoning_tokens, cost_usd)
SELECT date_trunc('day', ts, 'UTC'), tenant_id, coalesce(model, ''), coalesce(provider, ''),
       usage_prompt_band(prompt_tokens), count(*), sum(prompt_tokens), sum(cached_tokens),
       sum(cache_write_tokens), sum(cache_write_1h_tokens), sum(completion_tokens),
       sum(reasoning_tokens), sum(cost_usd)
FROM usage_events WHERE tenant_id IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;
UPDATE usage_daily_nokey k SET cache_write_tokens = e.w5, cache_write_1h_tokens = e.w1
FROM (SELECT coalesce(tenant_id, '00000000-0000-0000-0000-000000000000') AS tenant_id,
             date_trunc('day', ts, 'UTC') AS day, coalesce(model, '') AS model,
             coalesce(provider, '') AS provider, sum(cache_write_tokens) AS w5,
             sum(cache_write_1h_tokens) AS w1
      FROM usage_events GROUP BY 1, 2, 3, 4) e
WHERE k.tenant_id = e.tenant_id AND k.day = e.day AND k.model = e.model
  AND k.provider = e.provider AND (e.w5 <> 0 OR e.w1 <> 0);
