-- The usage retention job deletes old minutes of calls per upstream group in batches picked
-- by age; without an index on the minute alone each batch would read the whole table.
CREATE INDEX usage_group_minutes_minute_idx ON usage_group_minutes (minute);
