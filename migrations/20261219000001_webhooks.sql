-- Webhooks (issue 16): providers subscribe URLs to events; each event queues one
-- delivery per matching subscription in the transaction that caused it.
CREATE TABLE webhook_subscriptions (
    id uuid PRIMARY KEY,
    url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    -- Event names; empty means every event.
    events text[] NOT NULL DEFAULT '{}',
    -- Signs deliveries; shown once at creation, kept because every delivery needs it.
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    -- One event reaches several subscriptions under the same id; a redelivery keeps it.
    event_id uuid NOT NULL,
    event text NOT NULL,
    -- The exact bytes sent (and signed).
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    -- NULL once delivered or given up.
    next_attempt_at timestamptz DEFAULT now(),
    delivered_at timestamptz,
    last_attempt_at timestamptz,
    -- The last attempt: request headers, response status and body excerpt, or the error.
    request_headers jsonb,
    response_status integer,
    response_body text,
    error text,
    duration_ms integer,
    redelivery_of uuid REFERENCES webhook_deliveries (id) ON DELETE SET NULL
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_subscription_idx ON webhook_deliveries (subscription_id, created_at DESC, id DESC);
