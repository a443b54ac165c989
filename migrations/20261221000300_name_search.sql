-- Admin lists search names anywhere in them (ILIKE '%…%'). Without an index
-- that reads every one of a million applications (2.9 s a page); trigram
-- indexes read only the candidates. pg_trgm is a trusted extension: the
-- database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX applications_name_trgm_idx ON applications USING gin (name gin_trgm_ops);
CREATE INDEX accounts_name_trgm_idx ON accounts USING gin (name gin_trgm_ops);
