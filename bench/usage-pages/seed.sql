-- Usage data for bench/usage-pages/run, on top of `tollgate dev --seed-only`:
-- :apps applications of the demo developer on the Basic plan; the first one
-- (id md5('uapp1')) has 90 days of data (minute rows for 7 days, hour and day
-- rows for 90, month rows) and 200 failed calls; every application has the
-- last hour by minute, the last 24 hours by hour and 30 days by day, on up to
-- five metrics of the demo API.
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMPORARY TABLE ctx AS
SELECT a.id AS api, p.id AS plan, m.account_id
FROM api_products a JOIN plans p ON p.api_id = a.id AND p.system_name = 'basic'
JOIN memberships m ON m.user_id = (SELECT id FROM users WHERE email = 'dev@example.com')
WHERE a.slug = 'weather';
CREATE TEMPORARY TABLE bench_metrics AS
SELECT m.id FROM metrics m, ctx WHERE m.api_id = ctx.api ORDER BY m.parent_id NULLS FIRST, m.system_name LIMIT 5;
INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
SELECT md5('uapp' || i)::uuid, ctx.account_id, ctx.api, ctx.plan, 'Bench app ' || i, 'live'
FROM ctx, generate_series(1, :apps) AS i;
CREATE TEMPORARY TABLE buckets (granularity rollup_granularity, bucket_start timestamptz, first_app_only boolean);
INSERT INTO buckets
SELECT 'minute', t, t < date_trunc('minute', now()) - interval '1 hour'
FROM generate_series(date_trunc('minute', now()) - interval '7 days', date_trunc('minute', now()), interval '1 minute') AS t;
INSERT INTO buckets
SELECT 'hour', t, t < date_trunc('hour', now()) - interval '24 hours'
FROM generate_series(date_trunc('hour', now()) - interval '90 days', date_trunc('hour', now()), interval '1 hour') AS t;
INSERT INTO buckets
SELECT 'day', t, t < date_trunc('day', now()) - interval '30 days'
FROM generate_series(date_trunc('day', now()) - interval '90 days', date_trunc('day', now()), interval '1 day') AS t;
INSERT INTO buckets
SELECT 'month', t, false
FROM generate_series(date_trunc('month', now()) - interval '3 months', date_trunc('month', now()), interval '1 month') AS t;
INSERT INTO usage_rollups (application_id, metric_id, granularity, bucket_start, hits, status_2xx, status_4xx, status_5xx, latency_buckets)
SELECT md5('uapp' || i)::uuid, m.id, b.granularity, b.bucket_start, 15, 12, 2, 1, '{3,3,3,2,1,1,1,1,0,0,0}'
FROM generate_series(1, :apps) AS i CROSS JOIN bench_metrics m JOIN buckets b ON (NOT b.first_app_only OR i = 1);
INSERT INTO failed_calls (application_id, at, method, path, status, error, key_prefix, latency_us)
SELECT md5('uapp1')::uuid, now() - make_interval(secs => i), 'GET', '/weather/forecast/' || i, 429, 'rate_limited', 'tg_uk_abcd', 1200
FROM generate_series(1, 200) AS i;
COMMIT;
VACUUM ANALYZE;
