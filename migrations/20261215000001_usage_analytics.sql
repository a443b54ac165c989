-- Usage analytics (issue 11): latency per rollup, hour/day/month buckets in
-- the plan's time zone, refusals, recent failed calls, notifications and
-- alert levels 50..300 % that plans switch on and applications mute.

-- Latency buckets -----------------------------------------------------------

-- Requests per latency bucket, bounds as protocol's LATENCY_BUCKET_BOUNDS_MS
-- (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000 ms, then slower): always
-- eleven counts, so percentiles can be computed per API and per app.
ALTER TABLE usage_rollups
    ADD COLUMN latency_buckets bigint[] NOT NULL DEFAULT '{0,0,0,0,0,0,0,0,0,0,0}'
        CHECK (cardinality(latency_buckets) = 11 AND array_ndims(latency_buckets) = 1
               AND 0 <= ALL (latency_buckets));

-- Element-wise sum of two latency-bucket arrays, saturating at bigint's max
-- (intake's ON CONFLICT merge).
CREATE FUNCTION usage_add_buckets(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(least(coalesce(x, 0)::numeric + coalesce(y, 0), 9223372036854775807)::bigint ORDER BY i),
                    '{}')
    FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
$$;

-- Buckets in the plan's time zone --------------------------------------------

-- Until now hour, day and month buckets were UTC. They now start where
-- protocol::period's windows of the plan's zone start (local hh:00, local
-- midnight, the 1st at local midnight), so day and month buckets tile limit
-- windows and billing months. Minute rows were never deleted before this
-- migration (there was no retention), so the coarser rows of applications on
-- non-UTC plans are rebuilt exactly from them.
CREATE TEMPORARY TABLE usage_rebuild AS
    SELECT a.id AS application_id, p.time_zone
    FROM applications a JOIN plans p ON p.id = a.plan_id
    WHERE p.time_zone <> 'UTC' AND p.time_zone IN (SELECT name FROM pg_timezone_names);

DELETE FROM usage_rollups r USING usage_rebuild b
WHERE r.application_id = b.application_id AND r.granularity <> 'minute';

INSERT INTO usage_rollups (application_id, metric_id, granularity, bucket_start, hits,
                           status_2xx, status_3xx, status_4xx, status_5xx, latency_ms_sum)
SELECT r.application_id, r.metric_id, g.granularity,
       CASE g.granularity
           WHEN 'hour' THEN date_trunc('hour', r.bucket_start AT TIME ZONE b.time_zone) AT TIME ZONE b.time_zone
           WHEN 'day' THEN date_trunc('day', r.bucket_start AT TIME ZONE b.time_zone) AT TIME ZONE b.time_zone
           ELSE date_trunc('month', r.bucket_start AT TIME ZONE b.time_zone) AT TIME ZONE b.time_zone
       END AS bucket,
       sum(r.hits), sum(r.status_2xx), sum(r.status_3xx), sum(r.status_4xx), sum(r.status_5xx), sum(r.latency_ms_sum)
FROM usage_rollups r
JOIN usage_rebuild b ON b.application_id = r.application_id
CROSS JOIN (VALUES ('hour'::rollup_granularity), ('day'), ('month')) AS g(granularity)
WHERE r.granularity = 'minute'
GROUP BY r.application_id, r.metric_id, g.granularity, bucket;
DROP TABLE usage_rebuild;

-- Retention deletes by age per granularity.
CREATE INDEX usage_rollups_retention_idx ON usage_rollups (granularity, bucket_start) INCLUDE (application_id, metric_id);
DROP INDEX usage_rollups_bucket_idx;

-- Refusals -------------------------------------------------------------------

-- Requests the agents answered themselves (403, 429, their own 502, ...) and
-- could attribute to an application. Not usage: never counted against limits
-- or billed; rolled up like usage_rollups (same buckets) for status and
-- latency charts.
CREATE TABLE usage_refusals (
    application_id   uuid NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    granularity      rollup_granularity NOT NULL,
    bucket_start     timestamptz NOT NULL,
    status           smallint NOT NULL CHECK (status BETWEEN 400 AND 599),
    requests         bigint NOT NULL CHECK (requests >= 0),
    latency_buckets  bigint[] NOT NULL DEFAULT '{0,0,0,0,0,0,0,0,0,0,0}'
        CHECK (cardinality(latency_buckets) = 11 AND array_ndims(latency_buckets) = 1
               AND 0 <= ALL (latency_buckets)),
    PRIMARY KEY (application_id, granularity, bucket_start, status)
);
CREATE INDEX usage_refusals_retention_idx ON usage_refusals (granularity, bucket_start);

-- Recent failed calls -------------------------------------------------------

-- The newest 200 failed calls per application (intake trims in the same
-- transaction); refused by the agent (error set) or 4xx/5xx from upstream.
CREATE TABLE failed_calls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    api_id          uuid REFERENCES api_products(id) ON DELETE SET NULL,
    at              timestamptz NOT NULL,
    method          text NOT NULL CHECK (length(method) BETWEEN 1 AND 32),
    -- The matched operation (a metric of api_id); NULL when no rule matched.
    metric_id       uuid REFERENCES metrics(id) ON DELETE SET NULL,
    -- Raw path as received, without the query string.
    path            text NOT NULL CHECK (length(path) BETWEEN 1 AND 256),
    status          smallint NOT NULL CHECK (status BETWEEN 400 AND 599),
    -- The agent's error code; NULL when the status is the upstream's.
    error           text CHECK (error IS NULL OR length(error) BETWEEN 1 AND 64),
    key_prefix      text CHECK (key_prefix IS NULL OR length(key_prefix) BETWEEN 1 AND 16),
    latency_us      bigint NOT NULL CHECK (latency_us >= 0),
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX failed_calls_app_idx ON failed_calls (application_id, at DESC, id DESC);
CREATE INDEX failed_calls_at_idx ON failed_calls (at);

-- Notifications ------------------------------------------------------------

-- In-portal notifications, to one user or to a whole account.
CREATE TABLE notifications (
    id          uuid PRIMARY KEY,
    user_id     uuid REFERENCES users(id) ON DELETE CASCADE,
    account_id  uuid REFERENCES accounts(id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,63}$'),
    title       text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    body        text NOT NULL DEFAULT '' CHECK (length(body) <= 4000),
    -- A path on this server (never an absolute URL).
    link        text CHECK (link IS NULL OR (link ~ '^/([^/\\]|$)' AND length(link) <= 500)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz,
    CHECK ((user_id IS NULL) <> (account_id IS NULL))
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX notifications_account_idx ON notifications (account_id, created_at DESC) WHERE account_id IS NOT NULL;

-- Alerts ---------------------------------------------------------------------

ALTER TABLE usage_alerts DROP CONSTRAINT usage_alerts_threshold_pct_check;
ALTER TABLE usage_alerts ADD CONSTRAINT usage_alerts_threshold_pct_check
    CHECK (threshold_pct IN (50, 80, 90, 100, 120, 150, 200, 300));
-- Usage and limit when the level was crossed, and whether this row sent the
-- mail (a burst crossing several levels mails only the highest).
ALTER TABLE usage_alerts
    ADD COLUMN used bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    ADD COLUMN max_value bigint NOT NULL DEFAULT 0 CHECK (max_value >= 0),
    ADD COLUMN notified boolean NOT NULL DEFAULT false;
CREATE INDEX usage_alerts_violations_idx ON usage_alerts (created_at DESC) WHERE threshold_pct >= 100;

-- Which levels alert for a plan's applications.
ALTER TABLE plans ADD COLUMN alert_levels smallint[] NOT NULL DEFAULT '{80,100}'
    CHECK (alert_levels <@ '{50,80,90,100,120,150,200,300}'::smallint[] AND array_ndims(alert_levels) IS DISTINCT FROM 2);
-- Levels a developer muted for one application; only warnings below 100 %.
ALTER TABLE applications ADD COLUMN muted_alert_levels smallint[] NOT NULL DEFAULT '{}'
    CHECK (muted_alert_levels <@ '{50,80,90}'::smallint[] AND array_ndims(muted_alert_levels) IS DISTINCT FROM 2);

-- Applications whose usage changed since the alert job last looked. Intake
-- enqueues in its transaction; the job takes rows FOR UPDATE SKIP LOCKED.
CREATE TABLE usage_alert_queue (
    application_id  uuid PRIMARY KEY REFERENCES applications(id) ON DELETE CASCADE,
    queued_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_alert_queue_order_idx ON usage_alert_queue (queued_at);

-- Retention forgets batch ids older than intake accepts.
CREATE INDEX usage_batches_received_idx ON usage_batches (received_at);
