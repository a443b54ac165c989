-- When an API was deprecated: agents send it as RFC 9745's `Deprecation: @<seconds>`.
-- An API deprecated before this column existed takes its last change as the nearest known time.
ALTER TABLE api_products ADD COLUMN deprecated_at timestamptz;
UPDATE api_products SET deprecated_at = updated_at WHERE state = 'deprecated';
ALTER TABLE api_products ADD CONSTRAINT api_products_deprecated_at_check
    CHECK ((state = 'deprecated') = (deprecated_at IS NOT NULL));
