-- Mock mode: the gateway answers an API's operations from its description's examples
-- (or values made from its schemas) instead of its upstream.

-- The whole API in mock mode, every operation of its current version included.
CREATE TABLE api_mocks (
    api_id     uuid PRIMARY KEY REFERENCES api_products(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Single operations in mock mode, named by their method metric (which outlives versions).
CREATE TABLE operation_mocks (
    api_id     uuid NOT NULL,
    metric_id  uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_id, metric_id),
    FOREIGN KEY (api_id, metric_id) REFERENCES metrics (api_id, id) ON DELETE CASCADE
);

-- Agents learn of mock changes as their own entity, so an API's other changes never carry
-- them (agents of protocol version 1 only refuse what uses mocks).
ALTER TABLE config_changes DROP CONSTRAINT config_changes_entity_check;
ALTER TABLE config_changes ADD CONSTRAINT config_changes_entity_check
    CHECK (entity IN ('api', 'plan', 'application', 'credential', 'mocks', 'all'));
