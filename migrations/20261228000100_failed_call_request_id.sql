-- The id an agent gave a failed call's answer (X-Tollgate-Request-Id), for a developer to
-- quote and the provider to find; NULL for calls from older agents.
ALTER TABLE failed_calls ADD COLUMN request_id uuid;
