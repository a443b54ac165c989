-- Seeds a provider with one API and plan, :accounts developer accounts with
-- :apps applications between them, one key each, and :audit audit records.
-- Run on a migrated, empty database: psql -v accounts=100000 -v apps=1000000 -v audit=1000000 -f seed.sql
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO accounts (id, kind, name) VALUES ('00000000-0000-7000-8000-000000000001', 'provider', 'Bench provider');
INSERT INTO api_products (id, slug, name, state) VALUES ('00000000-0000-7000-8000-0000000000a1', 'bench', 'Bench API', 'published');
INSERT INTO metrics (id, api_id, system_name, friendly_name)
VALUES ('00000000-0000-7000-8000-0000000000b1', '00000000-0000-7000-8000-0000000000a1', 'hits', 'Hits');
INSERT INTO plans (id, api_id, system_name, name, published)
VALUES ('00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000a1', 'basic', 'Basic', true);
INSERT INTO accounts (id, kind, name, created_at)
SELECT md5('account' || i)::uuid, 'developer', 'Developer ' || i, now() - make_interval(secs => i)
FROM generate_series(1, :accounts) AS i;
INSERT INTO applications (id, account_id, api_id, plan_id, name, state, created_at)
SELECT md5('app' || i)::uuid, md5('account' || (1 + i % :accounts))::uuid,
       '00000000-0000-7000-8000-0000000000a1', '00000000-0000-7000-8000-0000000000c1',
       'App ' || i, (CASE WHEN i % 50 = 0 THEN 'suspended' ELSE 'live' END)::application_state,
       now() - make_interval(secs => i)
FROM generate_series(1, :apps) AS i;
INSERT INTO credentials (id, application_id, kind, key_hash, prefix, last4)
SELECT md5('key' || i)::uuid, md5('app' || i)::uuid, 'user_key',
       decode(md5('k' || i) || md5('h' || i), 'hex'), 'tg_' || substr(md5('k' || i), 1, 5), right(md5('k' || i), 4)
FROM generate_series(1, :apps) AS i;
INSERT INTO audit_log (at, actor_label, action, entity, entity_id, after)
SELECT now() - make_interval(secs => i), 'admin@bench.test', 'application.state', 'application',
       md5('app' || (1 + i % :apps))::uuid, '{"state": "live"}'
FROM generate_series(1, :audit) AS i;
COMMIT;
VACUUM ANALYZE;
