-- The report queries as they were before custom plans and one-pass aggregates (the reference),
-- for the admin dashboard over every application (period 24h).
SELECT date_trunc('hour', now()) - interval '23 hours' AS hf, date_trunc('hour', now()) + interval '1 hour' AS ht \gset
SELECT r.metric_id, r.bucket_start, sum(r.hits)::bigint, sum(r.status_2xx)::bigint, sum(r.status_3xx)::bigint, sum(r.status_4xx)::bigint, sum(r.status_5xx)::bigint
 FROM usage_rollups r JOIN applications a ON a.id = r.application_id
 WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht
 GROUP BY r.metric_id, r.bucket_start;
SELECT f.bucket_start, f.status, sum(f.requests)::bigint FROM usage_refusals f JOIN applications a ON a.id = f.application_id
 WHERE f.granularity = 'hour' AND f.bucket_start >= :hf AND f.bucket_start < :ht
 GROUP BY f.bucket_start, f.status;
SELECT u.i::int, sum(u.x)::bigint FROM (
   SELECT r.latency_buckets AS l FROM usage_rollups r JOIN applications a ON a.id = r.application_id JOIN metrics m ON m.id = r.metric_id
   WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht AND m.parent_id IS NULL
   UNION ALL
   SELECT f.latency_buckets FROM usage_refusals f JOIN applications a ON a.id = f.application_id
   WHERE f.granularity = 'hour' AND f.bucket_start >= :hf AND f.bucket_start < :ht
 ) t, unnest(t.l) WITH ORDINALITY AS u(x, i) GROUP BY u.i;
SELECT m.api_id, p.name, r.bucket_start, sum(r.hits)::bigint
 FROM usage_rollups r JOIN metrics m ON m.id = r.metric_id AND m.parent_id IS NULL JOIN api_products p ON p.id = m.api_id
 WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht GROUP BY m.api_id, p.name, r.bucket_start;
SELECT a.id, a.name, sum(r.hits)::bigint FROM usage_rollups r JOIN metrics m ON m.id = r.metric_id AND m.parent_id IS NULL
 JOIN applications a ON a.id = r.application_id
 WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht GROUP BY a.id, a.name ORDER BY 3 DESC, a.name LIMIT 10;
SELECT c.id, c.name, sum(r.hits)::bigint FROM usage_rollups r JOIN metrics m ON m.id = r.metric_id AND m.parent_id IS NULL
 JOIN applications a ON a.id = r.application_id JOIN accounts c ON c.id = a.account_id
 WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht GROUP BY c.id, c.name ORDER BY 3 DESC, c.name LIMIT 10;
