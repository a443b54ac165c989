-- A revoked or deleted credential must still be named to agents after its
-- row is gone (an application's deletion cascades to its keys), so the
-- change feed carries the key hash itself.
ALTER TABLE config_changes ADD COLUMN key_hash bytea CHECK (key_hash IS NULL OR length(key_hash) = 32);
ALTER TABLE config_changes ADD CONSTRAINT config_changes_credential_hash
    CHECK (entity <> 'credential' OR key_hash IS NOT NULL);
