-- The usage pages read one application's rollups of one granularity over a
-- time range, for every metric at once. The primary key leads with
-- (application_id, metric_id), so without this index such a read scans all
-- of the application's rows (90 days of minutes, hours and days: ~60 ms).
CREATE INDEX usage_rollups_app_range_idx ON usage_rollups (application_id, granularity, bucket_start);
