-- 0004_routing.sql: per-route timeouts between the bytes of an answer and the exact-match
-- response cache (docs/snapshot.md). 0 means none / off, so existing routes keep behaving as
-- before. The ranges are the data plane's (common/tg_snap.c).

ALTER TABLE routes
    ADD COLUMN first_byte_timeout_ms integer NOT NULL DEFAULT 0
        CHECK (first_byte_timeout_ms BETWEEN 0 AND 3600000),
    ADD COLUMN idle_timeout_ms integer NOT NULL DEFAULT 0
        CHECK (idle_timeout_ms BETWEEN 0 AND 3600000),
    ADD COLUMN cache_ttl_s integer NOT NULL DEFAULT 0
        CHECK (cache_ttl_s BETWEEN 0 AND 2678400);

-- The config version as a row that config changes update: a snapshot reads it in its own
-- repeatable-read transaction, so it sees a version only together with the change that made it.
-- (A sequence's value is visible before the transaction that took it commits: a snapshot built
-- in between carried the new version without the change, and the data planes, already at that
-- version, never asked for the change again.) The row lock also orders concurrent changes.
CREATE TABLE config_version (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    v  bigint NOT NULL
);
INSERT INTO config_version (v)
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM config_version_seq;
