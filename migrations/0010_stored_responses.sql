-- 0010_stored_responses.sql: the Responses API's stored responses (docs/responses.md, "State").
-- Data planes ship each response made with `store` (the default) through POST /dp/v1/responses and
-- fetch one they do not hold by (tenant, id); they never connect to the database. A row holds
-- the record the data plane shipped (the response object and its input items) sealed with
-- AES-256-GCM under TOLLGATE_MASTER_KEY, as provider credentials are: the table never holds a
-- prompt or an answer in the clear.

-- Days a tenant's stored responses are kept; NULL: the control plane's default
-- (--responses-retention-days, 30).
ALTER TABLE tenants ADD COLUMN responses_retention_days integer
    CHECK (responses_retention_days BETWEEN 1 AND 3650);

CREATE TABLE stored_responses (
    tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id         text NOT NULL CHECK (id ~ '^[A-Za-z0-9_-]{1,128}$'),
    key_id     uuid,                 -- the key that made it; no reference: a deleted key's
                                     -- responses stay until they expire
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL, -- created_at + the tenant's retention; purged after it
    deleted_at timestamptz,          -- DELETEd: data_enc is gone, the row stays (until it expires)
                                     -- so that a late resend of the same id is not stored again
    data_enc   bytea,                -- AES-256-GCM: nonce(12) || ciphertext || tag(16) of the record
    PRIMARY KEY (tenant_id, id),
    CHECK ((deleted_at IS NULL) = (data_enc IS NOT NULL))
);
CREATE INDEX stored_responses_expires ON stored_responses (expires_at);

-- item ids (input and output items) -> the response holding them, for `item_reference`. Ids are
-- opaque handles, not content.
CREATE TABLE stored_response_items (
    tenant_id   uuid NOT NULL,
    item_id     text NOT NULL,
    response_id text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, item_id, response_id),
    FOREIGN KEY (tenant_id, response_id) REFERENCES stored_responses (tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX stored_response_items_response ON stored_response_items (tenant_id, response_id);
