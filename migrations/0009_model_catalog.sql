-- 0009_model_catalog.sql: the model catalog (catalog/models.json): prices per million tokens of the
-- models Tollgate knows, applied to every route target whose provider kind and model it lists
-- unless an admin priced that provider and model in `prices`. The binary stores its built-in
-- catalog here at start (origin 'builtin'); `tollgate-control catalog import FILE` stores a newer
-- one (origin 'import'). The effective catalog is the one generated last; on a tie an import wins.

CREATE TABLE model_catalogs (
    id           bigserial PRIMARY KEY,
    origin       text NOT NULL CHECK (origin IN ('builtin', 'import')),
    version      text NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    generated_on date NOT NULL,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    doc          jsonb NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (origin, sha256)
);

CREATE VIEW catalog_effective AS
    SELECT id, origin, version, generated_on, sha256, doc, stored_at FROM model_catalogs
    ORDER BY generated_on DESC, (origin = 'import') DESC, id DESC LIMIT 1;

-- one row per model of the effective catalog; amounts stay exact (numeric from decimal text)
CREATE VIEW catalog_models AS
    SELECT m->>'kind' AS kind, coalesce(m->>'vendor', '') AS vendor, m->>'model' AS model,
           m->>'mode' AS mode, (m->>'context_window')::bigint AS context_window,
           (m->>'max_output_tokens')::bigint AS max_output_tokens,
           (m#>>'{prices,input}')::numeric AS input_per_mtok,
           (m#>>'{prices,cached_input}')::numeric AS cached_input_per_mtok,
           (m#>>'{prices,output}')::numeric AS output_per_mtok,
           (m#>>'{prices,cache_write,5m}')::numeric AS cache_write_per_mtok,
           (m#>>'{prices,cache_write,1h}')::numeric AS cache_write_1h_per_mtok,
           (m#>>'{prices,reasoning}')::numeric AS reasoning_per_mtok,
           m->'capabilities' AS capabilities, m->>'source' AS source, m->>'read_on' AS read_on
    FROM catalog_effective c, jsonb_array_elements(c.doc->'models') m;

-- which catalog vendor a provider is: an OpenAI-compatible provider by its base URL's host, and
-- the vendor marked default_for_kind when no host matches (a local server speaking OpenAI's API
-- under OpenAI's model names); other kinds have no vendor
CREATE VIEW provider_vendors AS
    SELECT p.id AS provider_id, p.kind,
           CASE WHEN p.kind <> 'openai' THEN '' ELSE coalesce(
               (SELECT v.key FROM catalog_effective c, jsonb_each(c.doc->'vendors') v
                 WHERE v.value->>'kind' = p.kind AND v.value->'hosts' ?
                       lower(substring(p.base_url FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)'))
                 ORDER BY v.key LIMIT 1),
               (SELECT v.key FROM catalog_effective c, jsonb_each(c.doc->'vendors') v
                 WHERE v.value->>'kind' = p.kind AND (v.value->>'default_for_kind')::boolean
                 ORDER BY v.key LIMIT 1), '') END AS vendor
    FROM providers p;

-- every route target's effective price and where it comes from: an admin's price for the
-- provider and model, else the catalog's, else none (the target is unpriced)
CREATE VIEW route_target_prices AS
    SELECT t.route_id, t.position, t.provider_id, t.model,
           CASE WHEN pr.provider_id IS NOT NULL THEN 'admin'
                WHEN cm.model IS NOT NULL THEN 'catalog' ELSE 'none' END AS price_source,
           coalesce(pr.input_per_mtok, cm.input_per_mtok) AS input_per_mtok,
           CASE WHEN pr.provider_id IS NOT NULL THEN pr.cached_input_per_mtok
                ELSE cm.cached_input_per_mtok END AS cached_input_per_mtok,
           -- an embedding model has no output price
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
    LEFT JOIN catalog_models cm ON cm.kind = pv.kind AND cm.vendor = pv.vendor
         AND cm.model = t.model AND cm.input_per_mtok IS NOT NULL;

-- the snapshot's prices (controlplane/snapshot.c) for the providers it serves (inc) and its served
-- routes: admins' prices, then the catalog's for the served targets no admin priced; amounts out
-- of the data plane's range are left out, as before
CREATE FUNCTION snapshot_prices(inc uuid[], served uuid[]) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(json_strip_nulls(json_build_object(
               'provider', q.provider_id, 'model', q.model, 'input_per_mtok', q.i,
               'cached_input_per_mtok', q.ci, 'output_per_mtok', q.o,
               'cache_write_per_mtok', q.w5, 'cache_write_1h_per_mtok', q.w1,
               'reasoning_per_mtok', q.r)) ORDER BY q.provider_id, q.model), '[]')
    FROM (SELECT p.provider_id, p.model, p.input_per_mtok AS i,
                 coalesce(p.cached_input_per_mtok, p.input_per_mtok) AS ci,
                 p.output_per_mtok AS o, NULL::numeric AS w5, NULL::numeric AS w1,
                 NULL::numeric AS r
            FROM prices p
           WHERE p.provider_id = ANY (inc) AND p.input_per_mtok <= 1000000
             AND p.output_per_mtok <= 1000000 AND coalesce(p.cached_input_per_mtok, 0) <= 1000000
          UNION
          SELECT x.provider_id, x.model, x.input_per_mtok,
                 coalesce(x.cached_input_per_mtok, x.input_per_mtok), x.output_per_mtok,
                 x.cache_write_per_mtok, x.cache_write_1h_per_mtok, x.reasoning_per_mtok
            FROM route_target_prices x
           WHERE x.price_source = 'catalog' AND x.route_id = ANY (served)
             AND x.provider_id = ANY (inc)) q
$$;
GRANT EXECUTE ON FUNCTION snapshot_prices(uuid[], uuid[]) TO tollgate_app;
