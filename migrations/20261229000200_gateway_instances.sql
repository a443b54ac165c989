-- One row per agent process behind a gateway's token: replicas share a token, and each says
-- which revision it enforces, so one that fell behind shows. `agent_id` is the id the agent
-- keeps in its state directory (the nil UUID for an agent that does not send one).
CREATE TABLE gateway_instances (
    gateway_id        uuid NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    agent_id          uuid NOT NULL,
    host              text NOT NULL DEFAULT '' CHECK (length(host) <= 253),
    connected         boolean NOT NULL DEFAULT false,
    -- The newest config stream of this instance: the end of an older one leaves it connected.
    stream_id         uuid,
    applied_revision  bigint,
    agent_version     text,
    last_error        text,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, agent_id)
);

-- The gateway's own copies of these now come from its instances.
ALTER TABLE gateways DROP COLUMN connected, DROP COLUMN stream_id, DROP COLUMN applied_revision,
    DROP COLUMN agent_version, DROP COLUMN last_error;
