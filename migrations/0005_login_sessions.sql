-- 0005_login_sessions.sql: failed logins counted per (account, source address), a session
-- generation per user (a password change ends the sessions issued before it), and who set a
-- virtual key's limits (members may narrow what an admin set, never widen it). docs/api.md.

-- One row per email as typed (lower-cased) and client address with failures in a row. Keyed by
-- the typed email, not the user, so that an unknown email is counted and locked exactly like a
-- real one. A success deletes the row; rows a day past their last failure are swept.
CREATE TABLE login_failures (
    email        text NOT NULL CHECK (length(email) BETWEEN 1 AND 254),
    source       text NOT NULL CHECK (length(source) <= 64),
    failures     integer NOT NULL CHECK (failures > 0),
    locked_until timestamptz,
    last_failure timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email, source)
);
CREATE INDEX login_failures_last ON login_failures (last_failure);

-- The lock per account let anyone lock anyone out; login_failures replaces it.
ALTER TABLE users
    DROP COLUMN failed_logins,
    DROP COLUMN locked_until,
    ADD COLUMN session_gen integer NOT NULL DEFAULT 0;

-- Keys that exist already: nobody knows who set their limits, so members may only narrow them.
ALTER TABLE virtual_keys ADD COLUMN limits_set_by_admin boolean NOT NULL DEFAULT true;
ALTER TABLE virtual_keys ALTER COLUMN limits_set_by_admin SET DEFAULT false;
