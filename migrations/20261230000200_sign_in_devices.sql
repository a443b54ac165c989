-- Browsers a user signed in from, or set a new password in by a reset link: a network whose
-- hour of failed sign-ins is spent (sign_in_client_failures) still lets that user sign in
-- from them (OWASP's "device cookies"), so a crowd behind one NAT cannot be locked out by
-- one of them. Only the token's SHA-256 is stored.
CREATE TABLE sign_in_devices (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sign_in_devices_user_idx ON sign_in_devices (user_id, created_at);
