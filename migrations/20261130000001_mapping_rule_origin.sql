-- Rules made from the operations of an imported OpenAPI document count each call on
-- exactly one operation (the most specific); rules an admin made keep 3scale's
-- semantics (every match counts). Agents need to know which is which.
ALTER TABLE mapping_rules ADD COLUMN imported boolean NOT NULL DEFAULT false;

-- Existing rules: imported rules were written in the same transaction as an API
-- version (its creation on import, or its publication), so they share its now().
UPDATE mapping_rules r SET imported = true
WHERE EXISTS (
    SELECT 1 FROM api_versions v
    WHERE v.api_id = r.api_id AND (v.created_at = r.created_at OR v.published_at = r.created_at)
);
