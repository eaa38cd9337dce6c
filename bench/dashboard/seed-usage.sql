-- bench/dashboard/seed-usage.sql: the usage events of the seed (see seed.sql), one worker of
-- :workers; worker :worker takes every :workers-th batch. Run after seed.sql, in parallel.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET search_path = public, bench_seed;
SELECT setseed(0.1 + :worker::int / 100.0) \g /dev/null
CREATE TEMP TABLE wcfg AS SELECT :worker::int AS worker, :workers::int AS workers;
-- the temporary table POST /dp/v1/usage copies a batch into, as controlplane/ingest.c makes it
:temp_sql;

-- One batch per 6 hours of the 90 days (the data planes' batches are smaller; the rollups sum
-- the same either way), each in its own transaction like a POST /dp/v1/usage.
-- Events: the key is skewed (k = keys * r^2.5: the first 10% of keys, the big tenant's, get ~40%),
-- each key mostly calls one model, ~2.5% errors (no tokens, no cost, like an upstream error),
-- 0.3% refused before a key was known (no tenant). Costs use the models' prices.
DO $$
DECLARE
    c cfg%ROWTYPE;
    q text := (SELECT q FROM ingest);
    span double precision;
    b timestamptz;
    e timestamptz;
    n bigint;
    done bigint := 0;
    j int := 0;
    w int := (SELECT worker FROM wcfg);
    nw int := (SELECT workers FROM wcfg);
BEGIN
    SELECT * INTO c FROM cfg;
    span := extract(epoch FROM c.t1 - c.t0);
    b := c.t0;
    WHILE b < c.t1 LOOP
        e := least(b + interval '6 hours', c.t1);
        n := round(c.events * extract(epoch FROM e - b) / span);
        IF b + interval '6 hours' >= c.t1 THEN n := c.events - done; END IF;
        done := done + n;
        IF j % nw <> w THEN
            j := j + 1;
            b := e;
            CONTINUE;
        END IF;
        j := j + 1;
        INSERT INTO tg_usage_in (id, ts, request_id, tenant_id, key_id, model, provider, upstream_model,
                                 endpoint, status, streamed, prompt_tokens, completion_tokens, cached_tokens,
                                 reasoning_tokens, cost_usd, latency_ms, ttfb_ms, usage_source, error)
        SELECT gen_random_uuid(), x.ts, 'req_' || substr(md5(x.a::text || x.ts::text), 1, 20),
               km.tenant_id, km.id, m.alias, m.provider, m.upstream, m.endpoint, x.status, x.streamed,
               x.pt, x.ct, x.cached, x.rt,
               round(((x.pt - x.cached) * m.in_p + x.cached * coalesce(m.cached_p, m.in_p) + (x.ct + x.rt) * m.out_p) / 1000000, 12),
               x.lat, CASE WHEN x.streamed THEN round((x.lat * (0.1 + x.f * 0.2))::numeric, 1)::float8 END,
               CASE WHEN x.status = 200 THEN 'provider' ELSE 'none' END,
               CASE x.status WHEN 200 THEN NULL WHEN 429 THEN 'upstream_rate_limited' WHEN 400 THEN 'invalid_request'
                             ELSE 'upstream_error' END
        FROM (
            SELECT r.*, b + r.a * (e - b) AS ts,
                   CASE WHEN r.d < 0.975 THEN 200 WHEN r.d < 0.985 THEN 429 WHEN r.d < 0.992 THEN 400
                        WHEN r.d < 0.997 THEN 502 ELSE 500 END AS status,
                   r.f < 0.4 AS streamed,
                   CASE WHEN r.d < 0.975 THEN 40 + floor(r.g * r.g * 6000)::bigint ELSE 0 END AS pt,
                   CASE WHEN r.d < 0.975 THEN 5 + floor(r.h * 900)::bigint ELSE 0 END AS ct,
                   CASE WHEN r.d < 0.975 AND r.h < 0.3 THEN floor(r.g * r.g * 3000)::bigint ELSE 0 END AS cached,
                   0::bigint AS rt,
                   round((120 + exp(r.i * 4.2) * 35 + r.g * 400)::numeric, 1)::float8 AS lat
            FROM (SELECT random() a, random() bb, random() cc, random() d, random() f, random() g,
                         random() h, random() i
                  FROM generate_series(1, n)) r
        ) x
        JOIN keymap km ON km.k = least(c.keys - 1, floor(c.keys * power(x.bb, 2.5))::int)
        JOIN models m ON m.i = CASE WHEN x.cc < 0.85 THEN km.mbase ELSE (km.mbase + 1 + (x.cc * 100)::int) % 8 END;
        -- refused before a key was known
        INSERT INTO tg_usage_in (id, ts, request_id, status, streamed, prompt_tokens, completion_tokens, cached_tokens,
                                 reasoning_tokens, cost_usd, model, endpoint, latency_ms, usage_source, error)
        SELECT gen_random_uuid(), b + random() * (e - b), 'req_' || substr(md5(random()::text), 1, 20), 401,
               false, 0, 0, 0, 0, 0, 'gpt-4o-mini', 'chat.completions', 0.4, 'none', 'invalid_api_key'
        FROM generate_series(1, n * 3 / 1000);
        EXECUTE q;
        COMMIT;
        b := e;
    END LOOP;
END
$$;

