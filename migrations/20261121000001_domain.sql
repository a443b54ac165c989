-- The whole Tollgate domain (see ../docs/ARCHITECTURE.md and DESIGN.md).
-- Constraints make invalid states unrepresentable; money is numeric, never float.
-- Migrations are forward-only: later changes add new files, never edit this one.

CREATE EXTENSION IF NOT EXISTS citext;

-- Accounts, users and roles -------------------------------------------------

CREATE TYPE account_kind AS ENUM ('provider', 'developer');
CREATE TYPE account_state AS ENUM ('active', 'suspended');
CREATE TYPE member_role AS ENUM ('owner', 'member');

CREATE TABLE accounts (
    id          uuid PRIMARY KEY,
    kind        account_kind NOT NULL,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    state       account_state NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    email               citext NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
    display_name        text CHECK (display_name IS NULL OR length(display_name) <= 200),
    -- NULL for users who only sign in through an identity provider.
    password_hash       text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    email_verified_at   timestamptz,
    is_admin            boolean NOT NULL DEFAULT false,
    failed_logins       integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    account_id  uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        member_role NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE invitations (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email        citext NOT NULL,
    role         member_role NOT NULL DEFAULT 'member',
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    invited_by   uuid REFERENCES users(id) ON DELETE SET NULL,
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE identity_links (
    provider     text NOT NULL CHECK (provider ~ '^[a-z0-9_-]{1,64}$'),
    subject      text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);

-- Sessions and one-time tokens ----------------------------------------------

-- Server-side sessions, so several server replicas share them. The cookie
-- carries a random id; only its SHA-256 is stored.
CREATE TABLE sessions (
    id_hash       bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id       uuid REFERENCES users(id) ON DELETE CASCADE,
    csrf_token    text NOT NULL CHECK (length(csrf_token) >= 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    user_agent    text,
    -- Short-lived state such as OAuth PKCE verifiers and flash messages.
    data          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TYPE token_purpose AS ENUM ('verify_email', 'reset_password');

CREATE TABLE user_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     token_purpose NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_tokens_user_idx ON user_tokens (user_id, purpose);

CREATE TABLE admin_tokens (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    prefix        text NOT NULL,
    last4         text NOT NULL CHECK (length(last4) = 4),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- Outgoing mail is written here in the same transaction as the change that
-- causes it, then delivered by a worker: nothing is lost if SMTP is down.
CREATE TABLE outbox_emails (
    id            uuid PRIMARY KEY,
    to_address    citext NOT NULL,
    subject       text NOT NULL,
    body_text     text NOT NULL,
    body_html     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    sent_at       timestamptz
);
CREATE INDEX outbox_emails_pending_idx ON outbox_emails (next_attempt_at) WHERE sent_at IS NULL;

-- API products, versions, metrics, mapping rules ---------------------------

CREATE TYPE api_state AS ENUM ('draft', 'published', 'deprecated', 'retired');
CREATE TYPE auth_mode AS ENUM ('user_key', 'app_id_app_key');
CREATE TYPE key_location AS ENUM ('query', 'header');

CREATE TABLE api_products (
    id              uuid PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$'),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description     text NOT NULL DEFAULT '',
    -- Public routing: a base path (always) and optionally a host.
    public_host     text CHECK (public_host IS NULL OR public_host ~ '^[a-z0-9.-]{1,253}(:[0-9]{1,5})?$'),
    base_path       text NOT NULL DEFAULT '/' CHECK (base_path ~ '^/'),
    state           api_state NOT NULL DEFAULT 'draft',
    sunset_at       timestamptz,
    auth_mode       auth_mode NOT NULL DEFAULT 'user_key',
    key_location    key_location NOT NULL DEFAULT 'query',
    key_name        text NOT NULL DEFAULT 'user_key' CHECK (key_name ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- What an agent does with a request no mapping rule matches.
    unmatched_is_404 boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Deprecation always announces a sunset date.
    CHECK (state <> 'deprecated' OR sunset_at IS NOT NULL)
);
CREATE UNIQUE INDEX api_products_route_idx ON api_products (coalesce(public_host, ''), base_path);

CREATE TABLE api_upstreams (
    id          uuid PRIMARY KEY,
    api_id      uuid NOT NULL REFERENCES api_products(id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (url ~ '^https?://'),
    weight      integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    UNIQUE (api_id, url)
);

CREATE TABLE api_versions (
    id            uuid PRIMARY KEY,
    api_id        uuid NOT NULL REFERENCES api_products(id) ON DELETE CASCADE,
    number        integer NOT NULL CHECK (number >= 1),
    -- The original document, byte for byte, as the portal renders it.
    spec_source   text NOT NULL,
    spec_format   text NOT NULL CHECK (spec_format IN ('json', 'yaml')),
    spec_version  text NOT NULL,
    title         text NOT NULL,
    version_label text NOT NULL DEFAULT '',
    operation_count integer NOT NULL CHECK (operation_count >= 0),
    change_report jsonb,
    published_at  timestamptz,
    imported_by   uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (api_id, number)
);

CREATE TABLE metrics (
    id            uuid PRIMARY KEY,
    api_id        uuid NOT NULL REFERENCES api_products(id) ON DELETE CASCADE,
    -- NULL for top-level metrics such as `hits`; methods point at their parent.
    parent_id     uuid,
    system_name   text NOT NULL CHECK (system_name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    friendly_name text NOT NULL,
    unit          text NOT NULL DEFAULT 'hit',
    description   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (api_id, system_name),
    UNIQUE (api_id, id),
    CHECK (parent_id IS NULL OR parent_id <> id),
    FOREIGN KEY (api_id, parent_id) REFERENCES metrics (api_id, id) ON DELETE CASCADE
);

CREATE TABLE mapping_rules (
    id            uuid PRIMARY KEY,
    api_id        uuid NOT NULL,
    metric_id     uuid NOT NULL,
    http_method   text NOT NULL CHECK (http_method IN ('GET','HEAD','POST','PUT','PATCH','DELETE','OPTIONS','TRACE','ANY')),
    pattern       text NOT NULL CHECK (pattern ~ '^/' AND length(pattern) <= 2048),
    delta         integer NOT NULL DEFAULT 1 CHECK (delta BETWEEN 1 AND 1000000),
    position      integer NOT NULL CHECK (position >= 0),
    last          boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- A rule counts only on a metric of its own API.
    FOREIGN KEY (api_id, metric_id) REFERENCES metrics (api_id, id) ON DELETE CASCADE,
    FOREIGN KEY (api_id) REFERENCES api_products (id) ON DELETE CASCADE,
    UNIQUE (api_id, http_method, pattern)
);
CREATE INDEX mapping_rules_api_idx ON mapping_rules (api_id, position);

-- Plans, limits and prices ---------------------------------------------------

CREATE TYPE limit_period AS ENUM ('minute', 'hour', 'day', 'week', 'month', 'year', 'eternity');

CREATE TABLE plans (
    id                 uuid PRIMARY KEY,
    api_id             uuid NOT NULL REFERENCES api_products(id) ON DELETE CASCADE,
    system_name        text NOT NULL CHECK (system_name ~ '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$'),
    name               text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '',
    published          boolean NOT NULL DEFAULT false,
    approval_required  boolean NOT NULL DEFAULT false,
    setup_fee          numeric(14, 4) NOT NULL DEFAULT 0 CHECK (setup_fee >= 0),
    monthly_fee        numeric(14, 4) NOT NULL DEFAULT 0 CHECK (monthly_fee >= 0),
    trial_days         integer NOT NULL DEFAULT 0 CHECK (trial_days BETWEEN 0 AND 3650),
    currency           char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    time_zone          text NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64),
    position           integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (api_id, system_name),
    UNIQUE (api_id, id)
);

CREATE TABLE usage_limits (
    id         uuid PRIMARY KEY,
    plan_id    uuid NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    metric_id  uuid NOT NULL REFERENCES metrics(id) ON DELETE CASCADE,
    period     limit_period NOT NULL,
    max_value  bigint NOT NULL CHECK (max_value >= 0),
    UNIQUE (plan_id, metric_id, period)
);

CREATE TABLE pricing_rules (
    id              uuid PRIMARY KEY,
    plan_id         uuid NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    metric_id       uuid NOT NULL REFERENCES metrics(id) ON DELETE CASCADE,
    -- Tier [min_units, max_units]; NULL max means unbounded.
    min_units       bigint NOT NULL CHECK (min_units >= 1),
    max_units       bigint CHECK (max_units IS NULL OR max_units >= min_units),
    price_per_unit  numeric(14, 6) NOT NULL CHECK (price_per_unit >= 0)
);
CREATE INDEX pricing_rules_plan_idx ON pricing_rules (plan_id, metric_id, min_units);

-- Tiers for one (plan, metric) never overlap.
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE pricing_rules ADD CONSTRAINT pricing_rules_no_overlap
    EXCLUDE USING gist (plan_id WITH =, metric_id WITH =,
                        int8range(min_units, max_units, '[]') WITH &&);

-- Applications and credentials ---------------------------------------------

CREATE TYPE application_state AS ENUM ('pending', 'live', 'suspended', 'rejected');

CREATE TABLE applications (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    api_id        uuid NOT NULL,
    plan_id       uuid NOT NULL,
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '',
    state         application_state NOT NULL,
    -- The public half of app_id + app_key credentials.
    app_id        text UNIQUE CHECK (app_id IS NULL OR app_id ~ '^[A-Za-z0-9_]{8,64}$'),
    trial_ends_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- The plan must belong to the subscribed API.
    FOREIGN KEY (api_id, plan_id) REFERENCES plans (api_id, id),
    UNIQUE (account_id, api_id, name)
);
CREATE INDEX applications_account_idx ON applications (account_id);
CREATE INDEX applications_plan_idx ON applications (plan_id);

CREATE TYPE credential_kind AS ENUM ('user_key', 'app_key');

CREATE TABLE credentials (
    id              uuid PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    kind            credential_kind NOT NULL,
    -- SHA-256 of the key; the key itself is shown once and never stored.
    key_hash        bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix          text NOT NULL CHECK (length(prefix) BETWEEN 4 AND 16),
    last4           text NOT NULL CHECK (length(last4) = 4),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Set on the old key when it is rotated: it keeps working until then.
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    replaced_by     uuid REFERENCES credentials(id) ON DELETE SET NULL
);
CREATE INDEX credentials_application_idx ON credentials (application_id);

-- At most 5 app_keys and one user_key are active per application, enforced in core/ under a row lock.

-- Gateways and the config change feed --------------------------------------

CREATE TABLE gateways (
    id                uuid PRIMARY KEY,
    name              text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    token_hash        bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    token_prefix      text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz,
    applied_revision  bigint,
    agent_version     text,
    connected         boolean NOT NULL DEFAULT false,
    last_error        text,
    revoked_at        timestamptz
);

-- Every change an agent must learn about gets a row here; the revision is the
-- agent's cursor. A trigger NOTIFYs listeners so any replica can push it.
CREATE TABLE config_changes (
    revision     bigserial PRIMARY KEY,
    entity       text NOT NULL CHECK (entity IN ('api', 'plan', 'application', 'credential', 'all')),
    entity_id    uuid,
    operation    text NOT NULL CHECK (operation IN ('upsert', 'delete')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_config_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tollgate_config', NEW.revision::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER config_changes_notify AFTER INSERT ON config_changes
    FOR EACH ROW EXECUTE FUNCTION notify_config_change();

-- Usage ------------------------------------------------------------------------

-- Batch ids already counted: intake inserts here in the same transaction as the
-- rollups, so a replayed batch counts once.
CREATE TABLE usage_batches (
    id           uuid PRIMARY KEY,
    gateway_id   uuid REFERENCES gateways(id) ON DELETE SET NULL,
    entry_count  integer NOT NULL CHECK (entry_count >= 0),
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE rollup_granularity AS ENUM ('minute', 'hour', 'day', 'month');

CREATE TABLE usage_rollups (
    application_id  uuid NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    metric_id       uuid NOT NULL REFERENCES metrics(id) ON DELETE CASCADE,
    granularity     rollup_granularity NOT NULL,
    bucket_start    timestamptz NOT NULL,
    hits            bigint NOT NULL DEFAULT 0 CHECK (hits >= 0),
    status_2xx      bigint NOT NULL DEFAULT 0 CHECK (status_2xx >= 0),
    status_3xx      bigint NOT NULL DEFAULT 0 CHECK (status_3xx >= 0),
    status_4xx      bigint NOT NULL DEFAULT 0 CHECK (status_4xx >= 0),
    status_5xx      bigint NOT NULL DEFAULT 0 CHECK (status_5xx >= 0),
    latency_ms_sum  bigint NOT NULL DEFAULT 0 CHECK (latency_ms_sum >= 0),
    PRIMARY KEY (application_id, metric_id, granularity, bucket_start)
);
CREATE INDEX usage_rollups_bucket_idx ON usage_rollups (granularity, bucket_start);

CREATE TABLE usage_alerts (
    application_id  uuid NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    usage_limit_id  uuid NOT NULL REFERENCES usage_limits(id) ON DELETE CASCADE,
    window_start    timestamptz NOT NULL,
    threshold_pct   smallint NOT NULL CHECK (threshold_pct IN (50, 80, 90, 100)),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (application_id, usage_limit_id, window_start, threshold_pct)
);

-- Billing ------------------------------------------------------------------

CREATE TYPE invoice_state AS ENUM ('open', 'finalized', 'paid', 'failed', 'cancelled');
CREATE TYPE invoice_line_kind AS ENUM ('setup_fee', 'monthly_fee', 'usage', 'adjustment');

CREATE TABLE invoices (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts(id) ON DELETE RESTRICT,
    number        text NOT NULL UNIQUE,
    period_start  date NOT NULL,
    period_end    date NOT NULL CHECK (period_end > period_start),
    currency      char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state         invoice_state NOT NULL DEFAULT 'open',
    total         numeric(14, 4) NOT NULL DEFAULT 0,
    issued_at     timestamptz,
    paid_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, period_start, currency)
);

CREATE TABLE invoice_lines (
    id              uuid PRIMARY KEY,
    invoice_id      uuid NOT NULL REFERENCES invoices(id) ON DELETE CASCADE,
    application_id  uuid REFERENCES applications(id) ON DELETE SET NULL,
    kind            invoice_line_kind NOT NULL,
    description     text NOT NULL,
    quantity        numeric(20, 6) NOT NULL DEFAULT 1,
    unit_price      numeric(14, 6) NOT NULL,
    amount          numeric(14, 4) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_lines_invoice_idx ON invoice_lines (invoice_id);

-- Audit log ----------------------------------------------------------------

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid REFERENCES users(id) ON DELETE SET NULL,
    -- Kept as text so the record survives the actor's deletion.
    actor_label  text NOT NULL,
    action       text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    entity       text NOT NULL,
    entity_id    uuid,
    before       jsonb,
    after        jsonb
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
