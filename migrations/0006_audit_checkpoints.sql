-- 0006_audit_checkpoints.sql: an audit log that holds against the database owner
-- (docs/operations.md, "Database roles" and "The audit log").
--
-- 1. Signed checkpoints. The hash chain alone is computed in Postgres, so whoever owns the table
--    can rewrite a row and recompute every later hash. The control plane signs each checkpoint
--    with HMAC-SHA-256 under a key derived from TOLLGATE_MASTER_KEY, which Postgres never sees:
--    a checkpoint lists the (id, row_hash) of every row since the previous checkpoint (after_id
--    is that checkpoint's last id), so verification names the first row that was changed,
--    removed or slipped in.
CREATE TABLE audit_checkpoints (
    id       bigserial PRIMARY KEY,
    ts       timestamptz NOT NULL,  -- the control plane's clock, signed as microseconds
    after_id bigint NOT NULL,       -- rows covered: after_id < id <= last_id
    last_id  bigint NOT NULL,
    ids      bigint[] NOT NULL,     -- every audit row in that range, in order
    hashes   bytea NOT NULL,        -- their row_hash values, 32 bytes each, in the same order
    key_id   text NOT NULL,         -- which key signed (a fingerprint, not the key)
    mac      bytea NOT NULL
);
CREATE INDEX audit_checkpoints_last_id ON audit_checkpoints (last_id);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- 2. The application role. `tollgate-control migrate` runs as the owner of the schema; the
--    server connects as a login role that is a member of tollgate_app, which may read and write
--    the configuration and usage tables but only INSERT and SELECT the audit tables (and, not
--    owning them, can neither disable their triggers nor truncate them).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tollgate_app') THEN
        BEGIN
            CREATE ROLE tollgate_app NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database of this cluster migrated at the same moment
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot create the role tollgate_app'
                    USING HINT = 'create it once as a role that may (CREATE ROLE tollgate_app '
                                 'NOLOGIN), then run tollgate-control migrate again';
        END;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO tollgate_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tollgate_app;
REVOKE UPDATE, DELETE ON audit_log, audit_checkpoints, schema_migrations FROM tollgate_app;
REVOKE INSERT ON schema_migrations FROM tollgate_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO tollgate_app;
-- tables and sequences that later migrations create (as this same owner) get the same rights
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tollgate_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO tollgate_app;

-- The control plane adds next months' usage partitions while it runs (controlplane/ingest.c):
-- creating a partition needs the parent's owner, so the function runs as its owner.
ALTER FUNCTION usage_ensure_partitions(integer) SECURITY DEFINER SET search_path = public;
REVOKE EXECUTE ON FUNCTION usage_ensure_partitions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION usage_ensure_partitions(integer) TO tollgate_app;
