-- bench/dashboard/seed.sql: a big Tollgate database for the dashboard bench, made inside Postgres.
-- Run by bench/dashboard/run (never by hand: it passes the variables below) on a database that
-- `tollgate-control migrate` made and whose first platform admin `tollgate-control serve` made
-- (every seeded user gets that admin's password hash, so the bench can sign in as any of them).
--
-- psql variables: tenants, keys, users, events, audit, days (sizes), insert_sql and temp_sql
-- (the statements POST /dp/v1/usage runs, read from controlplane/ingest.c by the runner, so the
-- rollups, usage_hourly and spend, are exactly what ingestion writes for these events).
--
-- Deterministic shape (setseed), random ids. Tenant 1 ("big") holds 10% of the keys and, with
-- the skewed key choice below, about 40% of the events; the other tenants share the rest.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DO $$ BEGIN PERFORM setseed(0.4242); END $$;
-- working tables of the seed (dropped by the runner at the end)
CREATE SCHEMA bench_seed;
SET search_path = public, bench_seed;

CREATE UNLOGGED TABLE bench_seed.cfg AS SELECT
    :tenants::int AS tenants, :keys::int AS keys, :users::int AS users,
    :events::bigint AS events, :audit::int AS audit, :days::int AS days,
    date_trunc('hour', now()) - make_interval(days => :days::int) AS t0, now() AS t1;

-- ---------------------------------------------------------------- tenants ---
INSERT INTO tenants (slug, name, rpm_limit, created_at, updated_at)
SELECT CASE WHEN i = 1 THEN 'big' ELSE format('tenant-%s', lpad(i::text, 3, '0')) END,
       CASE WHEN i = 1 THEN 'Big Corp' ELSE format('Tenant %s Ltd', i) END,
       CASE WHEN i % 4 = 0 THEN 6000 END,
       c.t0 - interval '30 days' + i * interval '1 hour', c.t0 - interval '30 days' + i * interval '1 hour'
FROM cfg c, generate_series(1, c.tenants) i;

CREATE UNLOGGED TABLE bench_seed.tmap AS
SELECT row_number() OVER (ORDER BY CASE WHEN slug = 'big' THEN '' ELSE slug END)::int AS i, id
FROM tenants;
CREATE UNIQUE INDEX ON tmap (i);

-- ------------------------------------------------------------------ users ---
-- The first admin (made by serve) stays; seeded users share its password hash.
INSERT INTO users (email, name, password_hash, is_platform_admin, is_service, created_at)
SELECT CASE WHEN u = 1 THEN 'big-admin@bench.example' WHEN u = 2 THEN 'big-viewer@bench.example'
            ELSE format('user-%s@bench.example', u) END,
       format('Bench User %s', u),
       CASE WHEN u % 50 = 0 THEN NULL ELSE (SELECT password_hash FROM users ORDER BY created_at LIMIT 1) END,
       u % 500 = 3, u % 50 = 0, c.t0 - interval '20 days'
FROM cfg c, generate_series(1, c.users) u;

CREATE UNLOGGED TABLE bench_seed.umap AS
SELECT row_number() OVER (ORDER BY created_at, email)::int AS u, id, email
FROM users WHERE email LIKE '%@bench.example';
CREATE UNIQUE INDEX ON umap (u);

-- Every seeded user is a member of one tenant: users 1..10% in the big tenant, the rest spread
-- over the others. One in ten also belongs to a second tenant.
CREATE UNLOGGED TABLE bench_seed.mtenant AS
SELECT m.u, m.id AS user_id,
       CASE WHEN m.u <= c.users / 10 THEN 1 ELSE 2 + (m.u % (c.tenants - 1)) END AS ti
FROM umap m, cfg c;
CREATE INDEX ON mtenant (ti, u);
INSERT INTO memberships (user_id, tenant_id, role, created_at)
SELECT mt.user_id, t.id,
       CASE WHEN mt.u = 1 THEN 'admin' WHEN mt.u = 2 THEN 'viewer'
            WHEN mt.u % 17 = 3 THEN 'owner' WHEN mt.u % 7 = 0 THEN 'admin'
            WHEN mt.u % 3 = 0 THEN 'viewer' ELSE 'member' END,
       c.t0 - interval '20 days'
FROM mtenant mt JOIN tmap t ON t.i = mt.ti, cfg c;
INSERT INTO memberships (user_id, tenant_id, role, created_at)
SELECT mt.user_id, t.id, 'viewer', c.t0 - interval '19 days'
FROM cfg c CROSS JOIN mtenant mt JOIN tmap t ON t.i = 1 + ((mt.ti + 7) % c.tenants)
WHERE mt.u % 10 = 5 AND 1 + ((mt.ti + 7) % c.tenants) <> mt.ti
ON CONFLICT DO NOTHING;
-- every tenant has an owner
INSERT INTO memberships (user_id, tenant_id, role, created_at)
SELECT (SELECT user_id FROM mtenant WHERE ti = t.i ORDER BY u <= 2, u LIMIT 1), t.id, 'owner', c.t0 - interval '20 days'
FROM tmap t, cfg c
WHERE EXISTS (SELECT 1 FROM mtenant WHERE ti = t.i)
ON CONFLICT (user_id, tenant_id) DO UPDATE SET role = 'owner';

-- ----------------------------------------------------- providers, routes ---
CREATE UNLOGGED TABLE bench_seed.models (i int PRIMARY KEY, alias text, provider text, kind text, upstream text,
                          endpoint text, in_p numeric, cached_p numeric, out_p numeric);
INSERT INTO models VALUES
    (0, 'gpt-4o-mini',       'openai',    'openai',    'gpt-4o-mini-2024-07-18',   'chat.completions', 0.15, 0.075, 0.60),
    (1, 'gpt-4o',            'openai',    'openai',    'gpt-4o-2024-11-20',        'chat.completions', 2.50, 1.25, 10.00),
    (2, 'gpt-4.1',           'azure-eu',  'azure',     'gpt-41-prod',              'chat.completions', 2.00, 0.50, 8.00),
    (3, 'o3-mini',           'openai',    'openai',    'o3-mini-2025-01-31',       'chat.completions', 1.10, 0.55, 4.40),
    (4, 'claude-sonnet-4',   'anthropic', 'anthropic', 'claude-sonnet-4-20250514', 'messages',         3.00, 0.30, 15.00),
    (5, 'claude-haiku-3.5',  'anthropic', 'anthropic', 'claude-3-5-haiku-20241022','messages',         0.80, 0.08, 4.00),
    (6, 'gemini-2.5-flash',  'gemini',    'gemini',    'gemini-2.5-flash',         'chat.completions', 0.30, 0.075, 2.50),
    (7, 'text-embedding-3-small', 'openai', 'openai',  'text-embedding-3-small',   'embeddings',       0.02, NULL, 0);

INSERT INTO providers (name, kind, base_url, settings, created_at, updated_at)
VALUES ('openai', 'openai', 'https://api.openai.com/v1', '{}', (SELECT t0 FROM cfg), (SELECT t0 FROM cfg)),
       ('azure-eu', 'azure', 'https://bench-eu.openai.azure.com/openai', '{"api_version":"2024-10-21"}', (SELECT t0 FROM cfg), (SELECT t0 FROM cfg)),
       ('anthropic', 'anthropic', 'https://api.anthropic.com', '{}', (SELECT t0 FROM cfg), (SELECT t0 FROM cfg)),
       ('gemini', 'gemini', 'https://generativelanguage.googleapis.com/v1beta/openai', '{}', (SELECT t0 FROM cfg), (SELECT t0 FROM cfg)),
       ('bedrock-us', 'bedrock', 'https://bedrock-runtime.us-east-1.amazonaws.com', '{"region":"us-east-1"}', (SELECT t0 FROM cfg), (SELECT t0 FROM cfg)),
       ('openai-backup', 'openai', 'https://openai-proxy.bench.example/v1', '{}', (SELECT t0 FROM cfg), (SELECT t0 FROM cfg));
-- a few tenants bring their own upstream
INSERT INTO providers (tenant_id, name, kind, base_url, created_at, updated_at)
SELECT t.id, 'own-openai', 'openai', 'https://llm.tenant' || t.i || '.example/v1', c.t0, c.t0
FROM tmap t, cfg c WHERE t.i % 10 = 1;

INSERT INTO prices (provider_id, model, input_per_mtok, cached_input_per_mtok, output_per_mtok, updated_at)
SELECT p.id, m.upstream, m.in_p, m.cached_p, m.out_p, c.t0
FROM models m JOIN providers p ON p.name = m.provider AND p.tenant_id IS NULL, cfg c;
-- the backup provider prices every OpenAI model too, and a spread of older models everywhere
INSERT INTO prices (provider_id, model, input_per_mtok, cached_input_per_mtok, output_per_mtok, updated_at)
SELECT p.id, m.upstream, m.in_p, m.cached_p, m.out_p, c.t0
FROM models m JOIN providers p ON p.name = 'openai-backup', cfg c WHERE m.provider = 'openai';
INSERT INTO prices (provider_id, model, input_per_mtok, output_per_mtok, updated_at)
SELECT p.id, format('legacy-model-%s', g), 0.5 + g / 10.0, 1.5 + g / 5.0, c.t0
FROM providers p, generate_series(1, 20) g, cfg c WHERE p.tenant_id IS NULL;

INSERT INTO routes (alias, strategy, created_at, updated_at)
SELECT alias, CASE WHEN i % 3 = 0 THEN 'least_busy' ELSE 'weighted' END, c.t0, c.t0
FROM models, cfg c;
INSERT INTO route_targets (route_id, position, provider_id, model, weight)
SELECT r.id, 0, p.id, m.upstream, 100
FROM models m JOIN routes r ON r.alias = m.alias AND r.tenant_id IS NULL
JOIN providers p ON p.name = m.provider AND p.tenant_id IS NULL;
INSERT INTO route_targets (route_id, position, provider_id, model, weight)
SELECT r.id, 1, p.id, m.upstream, 0
FROM models m JOIN routes r ON r.alias = m.alias AND r.tenant_id IS NULL
JOIN providers p ON p.name = 'openai-backup' WHERE m.provider = 'openai';
-- older aliases kept for compatibility
INSERT INTO routes (alias, created_at, updated_at)
SELECT format('legacy-%s', g), c.t0, c.t0 FROM generate_series(1, 22) g, cfg c;
INSERT INTO route_targets (route_id, position, provider_id, model, weight)
SELECT r.id, 0, (SELECT id FROM providers WHERE name = 'openai' AND tenant_id IS NULL),
       'legacy-model-' || substr(r.alias, 8), 1
FROM routes r WHERE r.alias LIKE 'legacy-%';
-- tenant routes to their own upstream
INSERT INTO routes (tenant_id, alias, created_at, updated_at)
SELECT p.tenant_id, 'own-gpt', c.t0, c.t0 FROM providers p, cfg c WHERE p.tenant_id IS NOT NULL;
INSERT INTO route_targets (route_id, position, provider_id, model)
SELECT r.id, 0, p.id, 'gpt-4o-mini'
FROM routes r JOIN providers p ON p.tenant_id = r.tenant_id WHERE r.alias = 'own-gpt';

-- ------------------------------------------------------------------- keys ---
-- Key k (0-based): keys 0 .. keys/10-1 belong to the big tenant, the others round-robin.
CREATE UNLOGGED TABLE bench_seed.keymap AS
SELECT k, gen_random_uuid() AS id,
       CASE WHEN k < c.keys / 10 THEN 1 ELSE 2 + (k % (c.tenants - 1)) END AS ti,
       (k * 7 + k / 13) % 7 AS mbase
FROM cfg c, generate_series(0, c.keys - 1) k;
ALTER TABLE keymap ADD COLUMN tenant_id uuid;
UPDATE keymap km SET tenant_id = t.id FROM tmap t WHERE t.i = km.ti;
CREATE UNIQUE INDEX ON keymap (k);
ANALYZE keymap;

INSERT INTO virtual_keys (id, tenant_id, owner_user_id, name, key_hash, last4, models, rpm_limit,
                          tpm_limit, expires_at, revoked_at, created_at, updated_at, limits_set_by_admin)
SELECT km.id, km.tenant_id,
       (SELECT mt.user_id FROM mtenant mt WHERE mt.ti = km.ti ORDER BY mt.u OFFSET (km.k % 5) LIMIT 1),
       format('%s-service-%s', (ARRAY['checkout', 'search', 'support-bot', 'batch', 'analytics', 'ci', 'mobile'])[1 + km.k % 7], km.k),
       sha256(convert_to('bench-key-' || km.id::text, 'UTF8')),
       substr(md5(km.id::text), 1, 4),
       CASE WHEN km.k % 3 = 0 THEN ARRAY[(SELECT alias FROM models WHERE i = km.mbase)] ELSE '{}' END,
       CASE WHEN km.k % 4 = 0 THEN 600 END,
       CASE WHEN km.k % 8 = 0 THEN 200000 END,
       CASE WHEN km.k % 50 = 7 THEN c.t1 - interval '3 days' WHEN km.k % 10 = 1 THEN c.t1 + interval '180 days' END,
       CASE WHEN km.k % 33 = 5 THEN c.t1 - interval '10 days' END,
       c.t0 - interval '10 days' + (km.k % 1000) * interval '1 minute',
       c.t0 - interval '10 days' + (km.k % 1000) * interval '1 minute',
       true
FROM keymap km, cfg c;

-- ---------------------------------------------------------------- budgets ---
INSERT INTO budgets (tenant_id, key_id, period, limit_usd, alert_threshold, created_at, updated_at)
SELECT t.id, NULL, p.period, CASE p.period WHEN 'daily' THEN 500 ELSE 10000 END, 0.8, c.t0, c.t0
FROM tmap t, cfg c, (VALUES ('daily'), ('monthly')) p (period);
INSERT INTO budgets (tenant_id, key_id, period, limit_usd, alert_threshold, created_at, updated_at)
SELECT km.tenant_id, km.id, CASE WHEN km.k % 20 = 0 THEN 'daily' ELSE 'monthly' END,
       50 + (km.k % 10) * 25, CASE WHEN km.k % 2 = 0 THEN 0.9 END, c.t0, c.t0
FROM keymap km, cfg c WHERE km.k % 10 = 0;

-- ------------------------------------------------------ API tokens, planes ---
INSERT INTO api_tokens (user_id, name, token_hash, last4, role, tenant_id, expires_at, created_by, created_at, last_used_at)
SELECT mt.user_id, format('automation-%s', mt.u), sha256(convert_to('bench-token-' || mt.u, 'UTF8')),
       lpad((mt.u % 10000)::text, 4, '0'), CASE WHEN mt.u % 2 = 0 THEN 'viewer' ELSE 'member' END,
       t.id, c.t1 + interval '90 days', mt.user_id, c.t0, c.t1 - interval '1 hour'
FROM mtenant mt JOIN tmap t ON t.i = mt.ti, cfg c WHERE mt.u % 10 = 1;

INSERT INTO dataplanes (id, host, version, snapshot_version, first_seen, last_seen)
SELECT format('dp-%s-bench', g), format('10.0.0.%s', g), '0.1.0', 1, c.t0, c.t1
FROM generate_series(1, 4) g, cfg c;

-- ----------------------------------------------------------------- events ---
-- Monthly partitions for the past months (a deployment 90 days old made them as each month
-- came; migrate made this month's and the next ones).
DO $$
DECLARE m date; name text;
BEGIN
    m := date_trunc('month', (SELECT t0 FROM cfg) AT TIME ZONE 'UTC')::date;
    WHILE m < date_trunc('month', now() AT TIME ZONE 'UTC')::date LOOP
        name := format('usage_events_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
                           name, m::timestamptz, (m + interval '1 month')::timestamptz);
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
END
$$;

-- Bulk loading: the secondary indexes of usage_events the migrations made are dropped here and
-- made again with their own definitions once the events are in (bench/dashboard/run), which is
-- several times faster than growing them row by row; the primary key stays (ingestion's
-- ON CONFLICT needs it).
CREATE UNLOGGED TABLE bench_seed.event_indexes AS
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'usage_events'::regclass AND NOT i.indisprimary;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT name FROM bench_seed.event_indexes LOOP
        EXECUTE format('DROP INDEX %I', r.name);
    END LOOP;
END
$$;

-- The ingestion statement, exactly as controlplane/ingest.c has it (seed-usage.sql runs it).
CREATE UNLOGGED TABLE bench_seed.ingest AS SELECT :'insert_sql'::text AS q;
