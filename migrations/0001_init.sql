-- 0001_init.sql: the control plane's schema. Applied in one transaction by
-- `tollgate-control migrate`, recorded in schema_migrations.

-- Every config change bumps this; the snapshot served to data planes carries it.
CREATE SEQUENCE config_version_seq;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email             text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    name              text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    password_hash     text,               -- argon2id encoded; NULL for service accounts
    is_platform_admin boolean NOT NULL DEFAULT false,
    is_service        boolean NOT NULL DEFAULT false,
    disabled          boolean NOT NULL DEFAULT false,
    failed_logins     integer NOT NULL DEFAULT 0,
    locked_until      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, tenant_id)
);
CREATE INDEX memberships_tenant ON memberships (tenant_id);

-- Admin API tokens for automation: shown once, stored as SHA-256.
CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    last4       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'owner', 'member', 'viewer')),
    tenant_id   uuid REFERENCES tenants(id) ON DELETE CASCADE,
    expires_at  timestamptz,
    revoked_at  timestamptz,
    created_by  uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

-- JWTs revoked by logout before they expire.
CREATE TABLE revoked_jwts (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE TABLE providers (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid REFERENCES tenants(id) ON DELETE CASCADE, -- NULL: platform-wide
    name             text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    kind             text NOT NULL CHECK (kind IN ('openai', 'azure', 'anthropic', 'gemini', 'bedrock')),
    base_url         text NOT NULL CHECK (base_url ~ '^https?://'),
    credentials_enc  bytea,               -- AES-256-GCM: nonce(12) || ciphertext || tag(16)
    headers          jsonb NOT NULL DEFAULT '{}',
    settings         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX providers_name ON providers (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

CREATE TABLE routes (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid REFERENCES tenants(id) ON DELETE CASCADE,
    alias              text NOT NULL CHECK (length(alias) BETWEEN 1 AND 256),
    strategy           text NOT NULL DEFAULT 'weighted'
                       CHECK (strategy IN ('weighted', 'least_busy', 'lowest_latency')),
    retry              jsonb NOT NULL DEFAULT '{}',
    connect_timeout_ms integer NOT NULL DEFAULT 10000 CHECK (connect_timeout_ms BETWEEN 1 AND 3600000),
    timeout_ms         integer NOT NULL DEFAULT 600000 CHECK (timeout_ms BETWEEN 1 AND 3600000),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX routes_alias ON routes (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), alias);

CREATE TABLE route_targets (
    route_id    uuid NOT NULL REFERENCES routes(id) ON DELETE CASCADE,
    position    integer NOT NULL CHECK (position >= 0),
    provider_id uuid NOT NULL REFERENCES providers(id) ON DELETE RESTRICT,
    model       text NOT NULL CHECK (length(model) BETWEEN 1 AND 256),
    weight      integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 0 AND 1000000),
    PRIMARY KEY (route_id, position)
);

CREATE TABLE prices (
    provider_id           uuid NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    model                 text NOT NULL CHECK (length(model) BETWEEN 1 AND 256),
    input_per_mtok        numeric(20, 9) NOT NULL CHECK (input_per_mtok >= 0),
    cached_input_per_mtok numeric(20, 9) CHECK (cached_input_per_mtok >= 0),
    output_per_mtok       numeric(20, 9) NOT NULL CHECK (output_per_mtok >= 0),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, model)
);

CREATE TABLE virtual_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    owner_user_id uuid REFERENCES users(id) ON DELETE SET NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_hash      bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    last4         text NOT NULL,
    models        text[] NOT NULL DEFAULT '{}',
    rpm_limit     integer CHECK (rpm_limit > 0),
    tpm_limit     integer CHECK (tpm_limit > 0),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX virtual_keys_tenant ON virtual_keys (tenant_id);

CREATE TABLE budgets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key_id          uuid REFERENCES virtual_keys(id) ON DELETE CASCADE, -- NULL: the whole tenant
    period          text NOT NULL CHECK (period IN ('daily', 'monthly', 'total')),
    limit_usd       numeric(20, 9) NOT NULL CHECK (limit_usd >= 0),
    alert_threshold numeric(5, 4) CHECK (alert_threshold > 0 AND alert_threshold <= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX budgets_scope ON budgets (tenant_id, coalesce(key_id, '00000000-0000-0000-0000-000000000000'::uuid), period);

-- Usage events from data planes, partitioned by month; the primary key makes inserts idempotent.
CREATE TABLE usage_events (
    id                uuid NOT NULL,
    ts                timestamptz NOT NULL,
    request_id        text,
    tenant_id         uuid,
    key_id            uuid,
    model             text,
    provider          text,
    upstream_model    text,
    endpoint          text,
    status            integer NOT NULL,
    streamed          boolean NOT NULL DEFAULT false,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens     bigint NOT NULL DEFAULT 0,
    reasoning_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(20, 12) NOT NULL DEFAULT 0,
    latency_ms        double precision,
    ttfb_ms           double precision,
    usage_source      text,
    error             text,
    PRIMARY KEY (id, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

-- Running spend per scope and period, kept as events arrive (never summed from raw events).
CREATE TABLE spend (
    tenant_id    uuid NOT NULL,
    key_id       uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000', -- zero: tenant total
    period       text NOT NULL CHECK (period IN ('daily', 'monthly', 'total')),
    period_start date NOT NULL,
    cost_usd     numeric(24, 12) NOT NULL DEFAULT 0,
    requests     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, key_id, period, period_start)
);

-- Append-only and hash-chained: row_hash = sha256(prev_hash || canonical row).
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    ts          timestamptz NOT NULL DEFAULT now(),
    actor_id    uuid,
    actor_label text NOT NULL,
    tenant_id   uuid,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text,
    before      jsonb,
    after       jsonb,
    source_ip   text,
    prev_hash   bytea NOT NULL,
    row_hash    bytea NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

CREATE TABLE dataplanes (
    id               text PRIMARY KEY,
    host             text NOT NULL,
    version          text NOT NULL,
    snapshot_version bigint NOT NULL DEFAULT 0,
    first_seen       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz NOT NULL DEFAULT now()
);

-- The audit chain: each row's hash covers the previous row's hash and every field of the row.
CREATE FUNCTION audit_row_hash(prev bytea, id bigint, ts timestamptz, actor_id uuid,
                               actor_label text, tenant_id uuid, action text, target_type text,
                               target_id text, before jsonb, after jsonb, source_ip text)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(prev || convert_to(concat_ws(chr(31),
        id::text, (extract(epoch FROM ts) * 1000000)::bigint::text, coalesce(actor_id::text, ''),
        actor_label, coalesce(tenant_id::text, ''), action, target_type, coalesce(target_id, ''),
        coalesce(before::text, ''), coalesce(after::text, ''), coalesce(source_ip, '')), 'UTF8'))
$$;

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
