-- 0008_usage_rollups_coarse.sql: coarser usage rollups, so that GET /api/v1/usage over a month or
-- a quarter reads a few thousand rows, not millions (docs/api.md, "Usage").
--
-- usage_hourly has one row per hour, tenant, key, model and provider: with thousands of keys that
-- is nearly one row per request (46,000 rows a day for 58,000 requests on the bench's seed), so a
-- month's report summed a million rows. Three more rollups hold the same counters and latency
-- histograms at coarser grains; the report reads the coarsest one that answers it exactly:
--
--   usage_daily        (day, tenant, key, model, provider)  bucket=day with key_id or group_by=key
--   usage_hourly_nokey (hour, tenant, model, provider)      bucket=hour without the key
--   usage_daily_nokey  (day, tenant, model, provider)       bucket=day without the key
--   usage_hourly_all   (hour, model, provider)              every tenant at once (platform
--   usage_daily_all    (day, model, provider)               admins), without the key or tenant
--
-- POST /dp/v1/usage adds each new event to all four in the one statement (and transaction) that
-- inserts it into usage_events, so each rollup counts every event exactly once (controlplane/
-- ingest.c). `day` is midnight UTC as a timestamptz, what date_trunc('day', ts, 'UTC') gives.
-- The zero uuid and '' mean "none", as in usage_hourly.

CREATE TABLE usage_daily (
    day               timestamptz NOT NULL,
    tenant_id         uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    key_id            uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    model             text NOT NULL DEFAULT '',
    provider          text NOT NULL DEFAULT '',
    requests          bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens     bigint NOT NULL DEFAULT 0,
    reasoning_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(24, 12) NOT NULL DEFAULT 0,
    latency_hist      bigint[],
    PRIMARY KEY (tenant_id, day, key_id, model, provider)
);
CREATE INDEX usage_daily_day ON usage_daily (day);
-- a key's own page (key_id given): that key's rows only, not its tenant's
CREATE INDEX usage_daily_key_day ON usage_daily (key_id, day);
CREATE INDEX usage_hourly_key_hour ON usage_hourly (key_id, hour);

CREATE TABLE usage_hourly_nokey (
    hour              timestamptz NOT NULL,
    tenant_id         uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    model             text NOT NULL DEFAULT '',
    provider          text NOT NULL DEFAULT '',
    requests          bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens     bigint NOT NULL DEFAULT 0,
    reasoning_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(24, 12) NOT NULL DEFAULT 0,
    latency_hist      bigint[],
    PRIMARY KEY (tenant_id, hour, model, provider)
);
CREATE INDEX usage_hourly_nokey_hour ON usage_hourly_nokey (hour);

CREATE TABLE usage_daily_nokey (
    day               timestamptz NOT NULL,
    tenant_id         uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    model             text NOT NULL DEFAULT '',
    provider          text NOT NULL DEFAULT '',
    requests          bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens     bigint NOT NULL DEFAULT 0,
    reasoning_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(24, 12) NOT NULL DEFAULT 0,
    latency_hist      bigint[],
    PRIMARY KEY (tenant_id, day, model, provider)
);
CREATE INDEX usage_daily_nokey_day ON usage_daily_nokey (day);

CREATE TABLE usage_hourly_all (
    hour              timestamptz NOT NULL,
    model             text NOT NULL DEFAULT '',
    provider          text NOT NULL DEFAULT '',
    requests          bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens     bigint NOT NULL DEFAULT 0,
    reasoning_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(24, 12) NOT NULL DEFAULT 0,
    latency_hist      bigint[],
    PRIMARY KEY (hour, model, provider)
);

CREATE TABLE usage_daily_all (
    day               timestamptz NOT NULL,
    model             text NOT NULL DEFAULT '',
    provider          text NOT NULL DEFAULT '',
    requests          bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens     bigint NOT NULL DEFAULT 0,
    reasoning_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(24, 12) NOT NULL DEFAULT 0,
    latency_hist      bigint[],
    PRIMARY KEY (day , model, provider)
);

-- Backfill from usage_hourly, which holds every event ingested so far. Migrations run before the
-- control plane serves (tollgate-control migrate, or at its start), and usage_hourly is locked
-- against writers meanwhile so that no event lands between the copy and the first ingest that
-- keeps the new rollups.
LOCK TABLE usage_hourly IN SHARE MODE;

-- The rows of usage_hourly with their day, and their histograms' buckets (k, n) per row.
CREATE TEMP TABLE tg_backfill ON COMMIT DROP AS
    SELECT hour, date_trunc('day', hour, 'UTC') AS day, tenant_id, key_id, model, provider,
           requests, errors, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
           cost_usd, latency_hist
    FROM usage_hourly;
CREATE TEMP TABLE tg_backfill_hist ON COMMIT DROP AS
    SELECT b.hour, b.day, b.tenant_id, b.key_id, b.model, b.provider, x >> 40 AS k,
           x & 1099511627775 AS n
    FROM tg_backfill b, unnest(b.latency_hist) x;

INSERT INTO usage_daily (day, tenant_id, key_id, model, provider, requests, errors, prompt_tokens,
                         completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_hist)
SELECT c.day, c.tenant_id, c.key_id, c.model, c.provider, c.requests, c.errors, c.pt, c.ct, c.kt,
       c.rt, c.cost, h.hist
FROM (SELECT day, tenant_id, key_id, model, provider, sum(requests) AS requests,
             sum(errors) AS errors, sum(prompt_tokens) AS pt, sum(completion_tokens) AS ct,
             sum(cached_tokens) AS kt, sum(reasoning_tokens) AS rt, sum(cost_usd) AS cost
      FROM tg_backfill GROUP BY 1, 2, 3, 4, 5) c
LEFT JOIN (SELECT day, tenant_id, key_id, model, provider,
                  array_agg((k << 40) + n ORDER BY k) AS hist
           FROM (SELECT day, tenant_id, key_id, model, provider, k, sum(n)::bigint AS n
                 FROM tg_backfill_hist GROUP BY 1, 2, 3, 4, 5, 6) y
           GROUP BY 1, 2, 3, 4, 5) h
    USING (day, tenant_id, key_id, model, provider);

INSERT INTO usage_hourly_nokey (hour, tenant_id, model, provider, requests, errors, prompt_tokens,
                                completion_tokens, cached_tokens, reasoning_tokens, cost_usd,
                                latency_hist)
SELECT c.hour, c.tenant_id, c.model, c.provider, c.requests, c.errors, c.pt, c.ct, c.kt, c.rt,
       c.cost, h.hist
FROM (SELECT hour, tenant_id, model, provider, sum(requests) AS requests, sum(errors) AS errors,
             sum(prompt_tokens) AS pt, sum(completion_tokens) AS ct, sum(cached_tokens) AS kt,
             sum(reasoning_tokens) AS rt, sum(cost_usd) AS cost
      FROM tg_backfill GROUP BY 1, 2, 3, 4) c
LEFT JOIN (SELECT hour, tenant_id, model, provider, array_agg((k << 40) + n ORDER BY k) AS hist
           FROM (SELECT hour, tenant_id, model, provider, k, sum(n)::bigint AS n
                 FROM tg_backfill_hist GROUP BY 1, 2, 3, 4, 5) y
           GROUP BY 1, 2, 3, 4) h
    USING (hour, tenant_id, model, provider);

INSERT INTO usage_daily_nokey (day, tenant_id, model, provider, requests, errors, prompt_tokens,
                               completion_tokens, cached_tokens, reasoning_tokens, cost_usd,
                               latency_hist)
SELECT c.day, c.tenant_id, c.model, c.provider, c.requests, c.errors, c.pt, c.ct, c.kt, c.rt,
       c.cost, h.hist
FROM (SELECT day, tenant_id, model, provider, sum(requests) AS requests, sum(errors) AS errors,
             sum(prompt_tokens) AS pt, sum(completion_tokens) AS ct, sum(cached_tokens) AS kt,
             sum(reasoning_tokens) AS rt, sum(cost_usd) AS cost
      FROM tg_backfill GROUP BY 1, 2, 3, 4) c
LEFT JOIN (SELECT day, tenant_id, model, provider, array_agg((k << 40) + n ORDER BY k) AS hist
           FROM (SELECT day, tenant_id, model, provider, k, sum(n)::bigint AS n
                 FROM tg_backfill_hist GROUP BY 1, 2, 3, 4, 5) y
           GROUP BY 1, 2, 3, 4) h
    USING (day, tenant_id, model, provider);

INSERT INTO usage_hourly_all (hour, model, provider, requests, errors, prompt_tokens,
                             completion_tokens, cached_tokens, reasoning_tokens, cost_usd,
                             latency_hist)
SELECT c.hour, c.model, c.provider, c.requests, c.errors, c.pt, c.ct, c.kt, c.rt, c.cost, h.hist
FROM (SELECT hour, model, provider, sum(requests) AS requests, sum(errors) AS errors,
             sum(prompt_tokens) AS pt, sum(completion_tokens) AS ct, sum(cached_tokens) AS kt,
             sum(reasoning_tokens) AS rt, sum(cost_usd) AS cost
      FROM tg_backfill GROUP BY 1, 2, 3) c
LEFT JOIN (SELECT hour, model, provider, array_agg((k << 40) + n ORDER BY k) AS hist
           FROM (SELECT hour, model, provider, k, sum(n)::bigint AS n
                 FROM tg_backfill_hist GROUP BY 1, 2, 3, 4) y
           GROUP BY 1, 2, 3) h
    USING (hour, model, provider);

INSERT INTO usage_daily_all (day, model, provider, requests, errors, prompt_tokens,
                             completion_tokens, cached_tokens, reasoning_tokens, cost_usd,
                             latency_hist)
SELECT c.day, c.model, c.provider, c.requests, c.errors, c.pt, c.ct, c.kt, c.rt, c.cost, h.hist
FROM (SELECT day, model, provider, sum(requests) AS requests, sum(errors) AS errors,
             sum(prompt_tokens) AS pt, sum(completion_tokens) AS ct, sum(cached_tokens) AS kt,
             sum(reasoning_tokens) AS rt, sum(cost_usd) AS cost
      FROM tg_backfill GROUP BY 1, 2, 3) c
LEFT JOIN (SELECT day, model, provider, array_agg((k << 40) + n ORDER BY k) AS hist
           FROM (SELECT day, model, provider, k, sum(n)::bigint AS n
                 FROM tg_backfill_hist GROUP BY 1, 2, 3, 4) y
           GROUP BY 1, 2, 3) h
    USING (day, model, provider);

DROP TABLE tg_backfill_hist;
DROP TABLE tg_backfill;
