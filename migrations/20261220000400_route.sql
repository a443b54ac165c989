-- Routing by consumer and by weight (issue 15): an API's named upstream groups, the
-- weighted split between them, and plans or applications sent to one group.
--
-- The group `default` always exists; its targets are the API's `api_upstreams` (so the
-- API's upstream editor keeps working and existing data needs no copy), its weight is
-- here. Other groups keep their targets in `urls`.

CREATE TABLE upstream_groups (
    api_id      uuid NOT NULL REFERENCES api_products(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    weight      integer NOT NULL CHECK (weight BETWEEN 0 AND 1000000),
    -- Targets of every group but `default` (whose targets are api_upstreams).
    urls        text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_id, name),
    CHECK (name = 'default' OR cardinality(urls) BETWEEN 1 AND 20)
);

-- Today's single upstream set becomes the `default` group at 100.
INSERT INTO upstream_groups (api_id, name, weight) SELECT id, 'default', 100 FROM api_products;

CREATE FUNCTION upstream_groups_default() RETURNS trigger AS $$
BEGIN
    INSERT INTO upstream_groups (api_id, name, weight) VALUES (NEW.id, 'default', 100) ON CONFLICT DO NOTHING;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER api_products_default_group AFTER INSERT ON api_products
    FOR EACH ROW EXECUTE FUNCTION upstream_groups_default();

-- A plan sent to one group of its API instead of the split.
CREATE TABLE plan_upstream_routes (
    plan_id     uuid PRIMARY KEY REFERENCES plans(id) ON DELETE CASCADE,
    api_id      uuid NOT NULL,
    group_name  text NOT NULL,
    FOREIGN KEY (api_id, group_name) REFERENCES upstream_groups(api_id, name)
);

-- One application sent to one group, whatever its plan says.
CREATE TABLE application_upstream_routes (
    application_id  uuid PRIMARY KEY REFERENCES applications(id) ON DELETE CASCADE,
    api_id          uuid NOT NULL,
    group_name      text NOT NULL,
    FOREIGN KEY (api_id, group_name) REFERENCES upstream_groups(api_id, name)
);

-- Agents learn of routing through its own entity in the change feed (mocks, from the
-- earlier 20261220000040_mock.sql, stay allowed).
ALTER TABLE config_changes DROP CONSTRAINT config_changes_entity_check;
ALTER TABLE config_changes ADD CONSTRAINT config_changes_entity_check
    CHECK (entity IN ('api', 'plan', 'application', 'credential', 'mocks', 'all', 'routing'));

-- Calls per upstream group and minute, so a canary's error rate can be compared with the
-- stable group's. Calls are counted from top-level metrics only (once per call).
CREATE TABLE usage_group_minutes (
    api_id          uuid NOT NULL REFERENCES api_products(id) ON DELETE CASCADE,
    group_name      text NOT NULL,
    minute          timestamptz NOT NULL,
    calls           bigint NOT NULL DEFAULT 0,
    calls_5xx       bigint NOT NULL DEFAULT 0,
    latency_buckets bigint[] NOT NULL,
    PRIMARY KEY (api_id, minute, group_name)
);
