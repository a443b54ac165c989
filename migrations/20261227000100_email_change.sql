-- A signed-in user can move their account to another address. The link goes
-- to the new address, which the token carries until it is followed.
ALTER TYPE token_purpose ADD VALUE IF NOT EXISTS 'change_email';
ALTER TYPE mail_request_kind ADD VALUE IF NOT EXISTS 'email_change';
ALTER TABLE user_tokens
    ADD COLUMN new_email citext
        CHECK (new_email IS NULL OR (length(new_email) BETWEEN 3 AND 254 AND new_email LIKE '%_@_%'));
