-- The report queries as they were before custom plans and one-pass aggregates (the reference),
-- for one application's usage page (period 24h).
SELECT date_trunc('hour', now()) - interval '23 hours' AS hf, date_trunc('hour', now()) + interval '1 hour' AS ht, md5('uapp1')::uuid AS app, (SELECT api_id FROM applications WHERE id = md5('uapp1')::uuid) AS api \gset
SELECT r.metric_id, r.bucket_start, sum(r.hits)::bigint, sum(r.status_2xx)::bigint, sum(r.status_3xx)::bigint, sum(r.status_4xx)::bigint, sum(r.status_5xx)::bigint
 FROM usage_rollups r JOIN applications a ON a.id = r.application_id
 WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht
   AND (:app::uuid IS NULL OR r.application_id = :app) AND (:api::uuid IS NULL OR a.api_id = :api)
 GROUP BY r.metric_id, r.bucket_start;
SELECT f.bucket_start, f.status, sum(f.requests)::bigint FROM usage_refusals f JOIN applications a ON a.id = f.application_id
 WHERE f.granularity = 'hour' AND f.bucket_start >= :hf AND f.bucket_start < :ht
   AND (:app::uuid IS NULL OR f.application_id = :app) AND (:api::uuid IS NULL OR a.api_id = :api)
 GROUP BY f.bucket_start, f.status;
SELECT u.i::int, sum(u.x)::bigint FROM (
   SELECT r.latency_buckets AS l FROM usage_rollups r JOIN applications a ON a.id = r.application_id JOIN metrics m ON m.id = r.metric_id
   WHERE r.granularity = 'hour' AND r.bucket_start >= :hf AND r.bucket_start < :ht
     AND (:app::uuid IS NULL OR r.application_id = :app) AND (:api::uuid IS NULL OR a.api_id = :api) AND m.parent_id IS NULL
   UNION ALL
   SELECT f.latency_buckets FROM usage_refusals f JOIN applications a ON a.id = f.application_id
   WHERE f.granularity = 'hour' AND f.bucket_start >= :hf AND f.bucket_start < :ht
     AND (:app::uuid IS NULL OR f.application_id = :app) AND (:api::uuid IS NULL OR a.api_id = :api)
 ) t, unnest(t.l) WITH ORDINALITY AS u(x, i) GROUP BY u.i;
