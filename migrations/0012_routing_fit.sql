-- 0012_routing_fit.sql: capability-aware routing (docs/routing.md). The `cheapest` strategy; an
-- admin's override of a route target's model info (context window, max output, capabilities),
-- which otherwise comes from the model catalog; and each target's effective info for the snapshot.

ALTER TABLE routes DROP CONSTRAINT routes_strategy_check;
ALTER TABLE routes ADD CONSTRAINT routes_strategy_check
    CHECK (strategy IN ('weighted', 'least_busy', 'lowest_latency', 'cheapest'));

-- {context_window, max_output_tokens, capabilities: {tools: bool, ...}}, checked by the routes API;
-- NULL: the catalog's alone
ALTER TABLE route_targets ADD COLUMN info jsonb CHECK (info IS NULL OR jsonb_typeof(info) = 'object');

-- every route target's effective model info: the admin's members over the catalog's, member by
-- member; NULL when neither knows the model. Only values the data plane takes go out (a window
-- of 1 to 1e9 tokens, boolean capabilities), so that an odd catalog entry cannot stop a snapshot.
CREATE VIEW route_target_info AS
    SELECT t.route_id, t.position, t.provider_id, t.model, t.weight,
           CASE WHEN cm.model IS NULL AND t.info IS NULL THEN NULL ELSE jsonb_strip_nulls(
               jsonb_build_object(
                   'context_window', (SELECT v FROM (VALUES (coalesce(
                       (t.info->>'context_window')::bigint, cm.context_window))) x(v)
                       WHERE v BETWEEN 1 AND 1000000000),
                   'max_output_tokens', (SELECT v FROM (VALUES (coalesce(
                       (t.info->>'max_output_tokens')::bigint, cm.max_output_tokens))) x(v)
                       WHERE v BETWEEN 1 AND 1000000000),
                   'capabilities', (SELECT jsonb_object_agg(c.key, c.value)
                       FROM jsonb_each(coalesce(CASE WHEN jsonb_typeof(cm.capabilities) = 'object'
                                                     THEN cm.capabilities END, '{}'::jsonb)
                                       || coalesce(t.info->'capabilities', '{}'::jsonb)) c
                      WHERE jsonb_typeof(c.value) = 'boolean'))) END AS info
    FROM route_targets t
    JOIN provider_vendors pv ON pv.provider_id = t.provider_id
    LEFT JOIN LATERAL (SELECT * FROM catalog_models m WHERE m.kind = pv.kind
                          AND m.vendor = pv.vendor AND m.model = t.model LIMIT 1) cm ON true;
