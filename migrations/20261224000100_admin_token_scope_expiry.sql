-- Admin API tokens get a scope and an optional end: a read token can only read (a dashboard,
-- an export), and a token made for a job can stop working on its own. Tokens made before this
-- keep what they could do: write, for ever.
CREATE TYPE admin_token_scope AS ENUM ('read', 'write');
ALTER TABLE admin_tokens
    ADD COLUMN scope admin_token_scope NOT NULL DEFAULT 'write',
    ADD COLUMN expires_at timestamptz,
    ADD CONSTRAINT admin_tokens_expires_after_creation CHECK (expires_at > created_at);

-- Which token acted, when a change came through the admin API, beside the admin it acts as:
-- the label stays the admin's email, which webhooks carry as the actor.
ALTER TABLE audit_log ADD COLUMN actor_via text;
