-- Billing (issue 12): settings, pricing modes, subscription history, the invoice
-- life cycle, per-month numbering and line provenance.

-- One row of provider-wide settings.
CREATE TYPE billing_mode AS ENUM ('postpaid', 'prepaid');
CREATE TABLE billing_settings (
    id                boolean PRIMARY KEY DEFAULT true CHECK (id),
    provider_name     text NOT NULL DEFAULT '' CHECK (length(provider_name) <= 200),
    provider_address  text NOT NULL DEFAULT '' CHECK (length(provider_address) <= 1000),
    provider_tax_id   text NOT NULL DEFAULT '' CHECK (length(provider_tax_id) <= 100),
    -- 0.2 is 20 %.
    tax_rate          numeric(6, 5) NOT NULL DEFAULT 0 CHECK (tax_rate >= 0 AND tax_rate < 1),
    mode              billing_mode NOT NULL DEFAULT 'postpaid',
    -- Days between issue and due date.
    payment_terms_days integer NOT NULL DEFAULT 14 CHECK (payment_terms_days BETWEEN 0 AND 365),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
INSERT INTO billing_settings DEFAULT VALUES;

-- Graduated (3scale's semantics, what plans meant so far) or volume, per plan and metric.
CREATE TYPE pricing_mode AS ENUM ('graduated', 'volume');
CREATE TABLE pricing_modes (
    plan_id    uuid NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    metric_id  uuid NOT NULL REFERENCES metrics(id) ON DELETE CASCADE,
    mode       pricing_mode NOT NULL,
    PRIMARY KEY (plan_id, metric_id)
);

-- Subscription history: each stretch of time an application spent on one plan, for
-- proration. Kept after the application is deleted (its final fee is still owed),
-- so application_id is not a foreign key. Maintained by the trigger below, so every
-- path that creates, approves, moves or deletes an application records it.
CREATE TABLE subscription_segments (
    id               bigserial PRIMARY KEY,
    application_id   uuid NOT NULL,
    application_name text NOT NULL,
    account_id       uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- A plan can be deleted only once no application is on it; its history goes with it
    -- (bill the last month before deleting a plan its applications just left).
    plan_id          uuid NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX subscription_segments_account_idx ON subscription_segments (account_id, started_at);
-- At most one open segment per application.
CREATE UNIQUE INDEX subscription_segments_open_idx ON subscription_segments (application_id) WHERE ended_at IS NULL;

-- Billing starts when an application goes live (creation without approval, or approval),
-- moves with plan changes, and ends with rejection or deletion. Suspension does not stop it.
CREATE FUNCTION track_subscription() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE subscription_segments SET ended_at = now()
         WHERE application_id = OLD.id AND ended_at IS NULL;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.plan_id IS DISTINCT FROM OLD.plan_id OR NEW.state IN ('pending', 'rejected') THEN
            UPDATE subscription_segments SET ended_at = now()
             WHERE application_id = NEW.id AND ended_at IS NULL;
        END IF;
    END IF;
    IF NEW.state IN ('live', 'suspended')
       AND NOT EXISTS (SELECT 1 FROM subscription_segments WHERE application_id = NEW.id AND ended_at IS NULL) THEN
        INSERT INTO subscription_segments (application_id, application_name, account_id, plan_id, started_at)
        VALUES (NEW.id, NEW.name, NEW.account_id, NEW.plan_id, now());
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER applications_subscription AFTER INSERT OR UPDATE OF plan_id, state OR DELETE ON applications
    FOR EACH ROW EXECUTE FUNCTION track_subscription();

-- Applications that exist already: billed from their creation on their current plan.
INSERT INTO subscription_segments (application_id, application_name, account_id, plan_id, started_at)
SELECT id, name, account_id, plan_id, created_at FROM applications WHERE state IN ('live', 'suspended');

-- The invoice life cycle of 3scale: open → finalized → pending (issued) → unpaid → paid | failed.
ALTER TYPE invoice_state ADD VALUE IF NOT EXISTS 'pending' AFTER 'finalized';
ALTER TYPE invoice_state ADD VALUE IF NOT EXISTS 'unpaid' AFTER 'pending';

ALTER TABLE invoices
    ADD COLUMN subtotal  numeric(14, 4) NOT NULL DEFAULT 0,
    ADD COLUMN tax_rate  numeric(6, 5) NOT NULL DEFAULT 0,
    ADD COLUMN tax       numeric(14, 4) NOT NULL DEFAULT 0,
    ADD COLUMN due_at    timestamptz,
    ADD COLUMN mode      billing_mode NOT NULL DEFAULT 'postpaid',
    -- The provider's details as printed when issued: the document is frozen.
    ADD COLUMN issuer    jsonb,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX invoices_period_idx ON invoices (period_start, state);

-- Numbers are YYYY-MM-NNNNNNNN, sequential per month: the issuing transaction takes the
-- next value under this row's lock, so numbers have no gaps and never repeat.
CREATE TABLE invoice_sequences (
    month  date PRIMARY KEY CHECK (extract(day FROM month) = 1),
    last   bigint NOT NULL CHECK (last >= 0)
);

-- What each line charges for. A line is "owed − already billed" for its subject, and one
-- invoice holds at most one line per subject, so nothing is billed twice.
ALTER TABLE invoice_lines
    ADD COLUMN plan_id        uuid REFERENCES plans(id) ON DELETE SET NULL,
    ADD COLUMN metric_id      uuid REFERENCES metrics(id) ON DELETE SET NULL,
    ADD COLUMN service_month  date CHECK (extract(day FROM service_month) = 1),
    -- Kept when the application is deleted, so its history still counts as billed.
    ADD COLUMN subject_application_id uuid;
CREATE UNIQUE INDEX invoice_lines_subject_idx ON invoice_lines
    (invoice_id, subject_application_id, kind, plan_id, metric_id, service_month) NULLS NOT DISTINCT;
CREATE INDEX invoice_lines_subject_lookup_idx ON invoice_lines (subject_application_id, service_month);

-- Every transition, with who asked for it.
CREATE TABLE invoice_transitions (
    id          bigserial PRIMARY KEY,
    invoice_id  uuid NOT NULL REFERENCES invoices(id) ON DELETE CASCADE,
    from_state  text,
    to_state    text NOT NULL,
    actor_label text NOT NULL,
    note        text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_transitions_invoice_idx ON invoice_transitions (invoice_id, at);
