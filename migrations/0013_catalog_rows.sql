-- 0013_catalog_rows.sql: the model catalog as rows, so that prices and model info stay fast with
-- a big catalog (docs/catalog.md, "How it is applied").
--
-- catalog_models, catalog_long_context and provider_vendors (0009, 0011) expanded the effective
-- catalog's jsonb document on every use: every route target's price or info read all of it
-- again (route_target_prices, route_target_info), and each provider's vendor read its `vendors`
-- twice. With 2,000 models and 900 route targets, GET /api/v1/routes took 0.7 s and a snapshot
-- build 4 s (bench/catalog/run.mjs). Each catalog is now also stored as one row per model and one
-- per vendor, written once by a trigger when the catalog is stored (model_catalogs is only ever
-- inserted into), and the three views read the effective catalog's rows through an index, with the same columns
-- and the same answers as before.

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

-- one catalog document's rows; the casts are 0009's and 0011's
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
