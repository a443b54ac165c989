-- Admin lists show the newest first, a page at a time, over up to millions of
-- rows. These indexes let a page read only its own rows instead of sorting the
-- whole table (1M applications: 2.9 s for 50 rows before).
CREATE INDEX applications_created_idx ON applications (created_at DESC, id);
CREATE INDEX accounts_developers_created_idx ON accounts (created_at DESC, id) WHERE kind = 'developer';
-- Filtered lists (by state or API) count and page through their own index.
CREATE INDEX applications_state_created_idx ON applications (state, created_at DESC, id);
CREATE INDEX applications_api_created_idx ON applications (api_id, created_at DESC, id);
