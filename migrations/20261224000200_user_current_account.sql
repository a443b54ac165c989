-- The organisation a user who belongs to several works in now. It is only a preference:
-- every request checks it against memberships, so a stale one (the user left or was removed)
-- falls back to another membership and never grants access.
ALTER TABLE users ADD COLUMN current_account_id uuid REFERENCES accounts (id) ON DELETE SET NULL;
