-- 0003_usage_rollups.sql: hourly usage rollups for the dashboard and per-tenant rate limits.
-- Both are written by POST /dp/v1/usage in the transaction that inserts the raw events, so
-- neither charts nor the snapshot ever scan usage_events.

ALTER TABLE tenants
    ADD COLUMN rpm_limit integer CHECK (rpm_limit > 0),
    ADD COLUMN tpm_limit integer CHECK (tpm_limit > 0);

-- One row per hour, tenant, key, model (the alias clients asked for) and provider.
-- The zero uuid stands for "none" (events refused before a key was known have no tenant).
CREATE TABLE usage_hourly (
    hour              timestamptz NOT NULL,
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
    PRIMARY KEY (tenant_id, hour, key_id, model, provider)
);
CREATE INDEX usage_hourly_hour ON usage_hourly (hour);
