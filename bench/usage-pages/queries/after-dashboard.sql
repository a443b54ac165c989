-- The report queries as core/src/usage/report.rs runs them now,
-- for the admin dashboard over every application (period 24h).
SELECT date_trunc('hour', now()) - interval '23 hours' AS hf, date_trunc('hour', now()) + interval '1 hour' AS ht \gset
BEGIN;
SELECT set_config('plan_cache_mode', 'force_custom_plan', true);
SELECT r.metric_id, r.bucket_start, sum(r.hits)::bigint, sum(r.status_2xx)::bigint, sum(r.status_3xx)::bigint, sum(r.status_4xx)::bigint, sum(r.status_5xx)::bigint
 FROM usage_rollups r
 WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht
 GROUP BY r.metric_id, r.bucket_start;
SELECT f.bucket_start, f.status, sum(f.requests)::bigint FROM usage_refusals f
 WHERE f.granularity = 'hour' AND f.bucket_start >= :hf AND f.bucket_start < :ht
 GROUP BY f.bucket_start, f.status;
SELECT ARRAY[coalesce(sum(l[1]), 0), coalesce(sum(l[2]), 0), coalesce(sum(l[3]), 0), coalesce(sum(l[4]), 0), coalesce(sum(l[5]), 0), coalesce(sum(l[6]), 0),
             coalesce(sum(l[7]), 0), coalesce(sum(l[8]), 0), coalesce(sum(l[9]), 0), coalesce(sum(l[10]), 0), coalesce(sum(l[11]), 0)]::bigint[] FROM (
   SELECT r.latency_buckets AS l FROM usage_rollups r JOIN metrics m ON m.id = r.metric_id
   WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht AND m.parent_id IS NULL
   UNION ALL
   SELECT f.latency_buckets FROM usage_refusals f
   WHERE f.granularity = 'hour' AND f.bucket_start >= :hf AND f.bucket_start < :ht
 ) t;
COMMIT;
WITH per_app AS (
   SELECT r.application_id, sum(r.hits)::bigint AS calls
   FROM usage_rollups r JOIN metrics m ON m.id = r.metric_id AND m.parent_id IS NULL
   WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht
   GROUP BY r.application_id)
(SELECT false, a.id, a.name, p.calls FROM per_app p JOIN applications a ON a.id = p.application_id ORDER BY p.calls DESC, a.name LIMIT 10)
UNION ALL
(SELECT true, c.id, c.name, sum(p.calls)::bigint FROM per_app p JOIN applications a ON a.id = p.application_id JOIN accounts c ON c.id = a.account_id
 GROUP BY c.id, c.name ORDER BY 4 DESC, c.name LIMIT 10);
