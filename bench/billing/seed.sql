-- bench/billing: :accounts developer accounts with 3 applications each on one
-- priced plan (10.00 a month, graduated tiers), subscribed since September 2025,
-- with October 2025 usage on every application.
BEGIN;
INSERT INTO api_products (id, slug, name, base_path, state)
VALUES ('00000000-0000-7000-8000-000000000001', 'bench', 'Bench', '/bench', 'published');
INSERT INTO metrics (id, api_id, system_name, friendly_name)
VALUES ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001', 'hits', 'Hits');
INSERT INTO plans (id, api_id, system_name, name, published, setup_fee, monthly_fee)
VALUES ('00000000-0000-7000-8000-000000000003', '00000000-0000-7000-8000-000000000001', 'basic', 'Basic', true, 5, 10);
INSERT INTO pricing_rules (id, plan_id, metric_id, min_units, max_units, price_per_unit) VALUES
  (gen_random_uuid(), '00000000-0000-7000-8000-000000000003', '00000000-0000-7000-8000-000000000002', 1, 1000, 0.01),
  (gen_random_uuid(), '00000000-0000-7000-8000-000000000003', '00000000-0000-7000-8000-000000000002', 1001, NULL, 0.005);
INSERT INTO accounts (id, kind, name)
SELECT gen_random_uuid(), 'developer', 'bench ' || i FROM generate_series(1, :accounts) i;
INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
SELECT gen_random_uuid(), a.id, '00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000003', 'app ' || n, 'live'
FROM accounts a CROSS JOIN generate_series(1, 3) n WHERE a.name LIKE 'bench %';
UPDATE subscription_segments SET started_at = '2025-09-01T00:00:00Z';
INSERT INTO usage_rollups (application_id, metric_id, granularity, bucket_start, hits)
SELECT id, '00000000-0000-7000-8000-000000000002', 'month', '2025-10-01T00:00:00Z', 500 + (random() * 2000)::int
FROM applications;
COMMIT;
ANALYZE;
