-- Throttles of the public account flows (see docs/SECURITY.md).
-- `client` is the throttling key of a client address: an IPv4 address, or
-- the /64 prefix of an IPv6 one (one host's share of a network).

-- Sign-in failures per (user, client): a stranger's failures pause only the
-- stranger, never the user at their own address. This replaces
-- users.failed_logins and users.locked_until, which are no longer written.
CREATE TABLE sign_in_failures (
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client        text NOT NULL CHECK (length(client) BETWEEN 1 AND 64),
    failures      integer NOT NULL CHECK (failures > 0),
    locked_until  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, client)
);
CREATE INDEX sign_in_failures_updated_idx ON sign_in_failures (updated_at);

-- Requests that name an address to mail (sign-up, a new verification link,
-- a password reset, an invitation): a budget per client and a cooldown per
-- address. Addresses are kept only as SHA-256 of their lower-case form.
CREATE TYPE mail_request_kind AS ENUM ('sign_up', 'verification', 'password_reset', 'invitation');

CREATE TABLE mail_requests (
    id              bigserial PRIMARY KEY,
    kind            mail_request_kind NOT NULL,
    client          text NOT NULL CHECK (length(client) BETWEEN 1 AND 64),
    address_hash    bytea NOT NULL CHECK (length(address_hash) = 32),
    -- False when the address was in its cooldown, so no mail went out.
    opens_cooldown  boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_requests_client_idx ON mail_requests (client, created_at);
CREATE INDEX mail_requests_address_idx ON mail_requests (address_hash, created_at) WHERE opens_cooldown;
CREATE INDEX mail_requests_created_idx ON mail_requests (created_at);
