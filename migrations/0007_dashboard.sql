-- 0007_dashboard.sql: what the admin dashboard reads, each from an index or a rollup, never a
-- scan of raw events (docs/api.md: "Request log", "Usage", "Audit log").

-- 1. The request log (GET /api/v1/requests) pages through a tenant's usage_events newest first,
--    by (ts, id), from an index that yields the rows in that order, so a page reads about
--    `limit` index entries whatever the table holds. Each index costs every ingested event an
--    insert, so there are few: the tenant's rows, one key's, the rows whose status is not 2xx
--    (a partial index: errors are few, and the error filters would otherwise read past every
--    success), and every tenant's (platform admins). The other filters (model, provider, 2xx)
--    are checked on the rows one of these yields: they select a share of a tenant's requests,
--    not a needle. Indexes on the partitioned parent are made on every partition, present and
--    future.
CREATE INDEX usage_events_tenant_ts ON usage_events (tenant_id, ts, id);
CREATE INDEX usage_events_tenant_key_ts ON usage_events (tenant_id, key_id, ts, id);
CREATE INDEX usage_events_tenant_errors_ts ON usage_events (tenant_id, ts, id)
    WHERE status < 200 OR status > 299;
CREATE INDEX usage_events_ts ON usage_events (ts, id);

-- 2. Latency percentiles (GET /api/v1/usage): a histogram of latency_ms per hourly rollup row,
--    kept by POST /dp/v1/usage in the statement that adds the counters. Buckets are fixed and
--    log-spaced, four per doubling: bucket 0 holds latencies under 1 ms, bucket k (1..80) those
--    in [2^((k-1)/4), 2^(k/4)) ms, bucket 81 everything from 2^20 ms (about 17 minutes) up.
--    Sparse: one bigint per bucket that has requests, (k << 40) + count, in bucket order, since
--    most hourly rows hold a few requests and a report then unnests a few elements per row
--    (unnest of an array costs a fraction of jsonb_each). NULL: no request with a latency.
ALTER TABLE usage_hourly ADD COLUMN latency_hist bigint[];

-- The bucket of a latency in ms (NULL for NULL).
CREATE FUNCTION tg_latency_bucket(ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ms IS NULL THEN NULL WHEN ms < 1 THEN 0
                ELSE least(1 + floor(ln(ms) / ln(2.0::double precision) * 4)::integer, 81) END
$$;

-- Two histograms added bucket by bucket (NULL is empty).
CREATE FUNCTION tg_latency_hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE
        (SELECT array_agg((k << 40) + n ORDER BY k) FROM
            (SELECT x >> 40 AS k, sum(x & 1099511627775)::bigint AS n FROM unnest(a || b) x
             GROUP BY 1) y)
    END
$$;

-- The latency a bucket stands for in a percentile: its geometric middle, so the answer is
-- within 2^(1/8) (9.1 %) of the true value for latencies from 1 ms to 2^20 ms.
CREATE FUNCTION tg_latency_bucket_ms(k integer) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN k <= 0 THEN 0.5 WHEN k >= 81 THEN 1048576
                ELSE round(power(2.0::double precision, (k - 0.5) / 4)::numeric, 2) END
$$;

-- 3. The audit log's filters (GET /api/v1/audit-log): by actor and by target, newest (highest id)
--    first, within a tenant (tenant admins always name theirs) or across all (platform admins);
--    by time, through the first and last id in the range (an index-only scan of (ts, id)), so that
--    reading newest first stops where the range does. Audit rows are few (one per change), so
--    these indexes cost writes little.
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_target ON audit_log (target_id, id);
CREATE INDEX audit_log_tenant_actor ON audit_log (tenant_id, actor_id, id);
CREATE INDEX audit_log_tenant_target ON audit_log (tenant_id, target_id, id);
CREATE INDEX audit_log_ts ON audit_log (ts, id);
