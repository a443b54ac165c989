-- Change reports people can trust (issue 10): a compatibility policy per
-- API, and staging of large versions off the request path.

-- Whether a new value in a response enum breaks clients (strict) or not
-- (additive_enums: the API tells clients to expect new values).
CREATE TYPE compatibility_policy AS ENUM ('strict', 'additive_enums');
ALTER TABLE api_products ADD COLUMN compatibility_policy compatibility_policy NOT NULL DEFAULT 'strict';

-- The version a staged version's report compares against.
ALTER TABLE api_versions ADD COLUMN base_number integer;

-- A version whose comparison is large gets its report from a background job.
-- Any replica's worker may claim a job (FOR UPDATE SKIP LOCKED); a running
-- job holds a lease that its worker extends while it reports progress, so a
-- job whose worker died is taken up again once the lease runs out.
CREATE TYPE report_state AS ENUM ('queued', 'running', 'ready', 'failed');
CREATE TABLE staging_jobs (
    id             uuid PRIMARY KEY,
    api_id         uuid NOT NULL,
    version_number integer NOT NULL,
    base_number    integer NOT NULL,
    state          report_state NOT NULL DEFAULT 'queued',
    -- What the worker is doing, for the page: reading, comparing, saving.
    phase          text NOT NULL DEFAULT 'queued',
    done           integer NOT NULL DEFAULT 0 CHECK (done >= 0),
    total          integer NOT NULL DEFAULT 0 CHECK (total >= 0),
    attempts       integer NOT NULL DEFAULT 0,
    lease_until    timestamptz,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    UNIQUE (api_id, version_number),
    FOREIGN KEY (api_id, version_number) REFERENCES api_versions (api_id, number) ON DELETE CASCADE
);
CREATE INDEX staging_jobs_open_idx ON staging_jobs (created_at) WHERE state IN ('queued', 'running');
