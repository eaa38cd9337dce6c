-- bench/dashboard/seed-audit.sql: the audit rows of the seed (see seed.sql). Run after seed.sql,
-- in parallel with seed-usage.sql.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET search_path = public, bench_seed;
-- ------------------------------------------------------------------ audit ---
-- 100,000 rows spread over the 90 days, chained exactly as controlplane/audit.c writes them
-- (prev_hash = the last row's row_hash, row_hash = audit_row_hash(...)), one INSERT per row.
DO $$
DECLARE
    c cfg%ROWTYPE;
    prev bytea := coalesce((SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1), decode(repeat('00', 32), 'hex'));
    nu int;
    actions text[] := ARRAY['key.create', 'key.update', 'key.rotate', 'key.revoke', 'budget.create', 'budget.update',
                            'member.put', 'token.create', 'route.update', 'price.put', 'tenant.update', 'provider.update'];
    types text[] := ARRAY['key', 'key', 'key', 'key', 'budget', 'budget', 'member', 'token', 'route', 'price', 'tenant', 'provider'];
    i int; a int; at_ts timestamptz; actor uuid; label text; tid uuid; ti int; tgt text; bf jsonb; af jsonb;
BEGIN
    SELECT * INTO c FROM cfg;
    nu := (SELECT count(*) FROM umap);
    FOR i IN 1 .. c.audit LOOP
        at_ts := c.t0 + (c.t1 - c.t0 - interval '1 minute') * (i::double precision / c.audit);
        a := 1 + (i * 7 + i / 11) % array_length(actions, 1);
        SELECT id, email INTO actor, label FROM umap WHERE u = 1 + (i * 31) % nu;
        ti := CASE WHEN i % 10 < 4 THEN 1 ELSE 1 + (i * 13) % c.tenants END;
        tid := CASE WHEN types[a] IN ('route', 'price', 'provider') THEN NULL ELSE (SELECT id FROM tmap WHERE tmap.i = ti) END;
        IF types[a] = 'key' THEN
            SELECT id::text INTO tgt FROM keymap WHERE k = (i * 17) % c.keys;
        ELSE
            tgt := md5(i::text)::uuid::text;
        END IF;
        bf := CASE WHEN actions[a] LIKE '%.create' THEN NULL
                   ELSE jsonb_build_object('name', format('%s-%s', types[a], i % 977), 'rpm_limit', 600, 'models', jsonb_build_array('gpt-4o-mini')) END;
        af := jsonb_build_object('name', format('%s-%s', types[a], i % 977), 'rpm_limit', CASE WHEN i % 2 = 0 THEN 1200 ELSE 600 END,
                                 'models', jsonb_build_array('gpt-4o-mini', 'gpt-4o'));
        INSERT INTO audit_log (id, ts, actor_id, actor_label, tenant_id, action, target_type, target_id,
                               before, after, source_ip, prev_hash, row_hash)
        SELECT v.id, v.ts, actor, label, tid, actions[a], types[a], tgt, bf, af, '10.1.2.' || (i % 200), prev,
               audit_row_hash(prev, v.id, v.ts, actor, label, tid, actions[a], types[a], tgt, bf, af, '10.1.2.' || (i % 200))
        FROM (SELECT nextval('audit_log_id_seq') AS id, at_ts AS ts) v
        RETURNING row_hash INTO prev;
    END LOOP;
END
$$;
