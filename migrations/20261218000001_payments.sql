-- Payments (issue 12): every charge attempt and every manual payment, and the
-- schedule of automatic tries on the invoice.

CREATE TYPE payment_outcome AS ENUM ('succeeded', 'declined');

CREATE TABLE payments (
    id            uuid PRIMARY KEY,
    invoice_id    uuid NOT NULL REFERENCES invoices(id) ON DELETE CASCADE,
    -- Text, not an enum: a card processor is added without a migration.
    provider      text NOT NULL CHECK (provider ~ '^[a-z][a-z0-9_]{0,31}$'),
    amount        numeric(30, 4) NOT NULL CHECK (amount >= 0),
    currency      char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- The provider's or the admin's reference (a bank transfer id, a charge id).
    reference     text NOT NULL DEFAULT '' CHECK (length(reference) <= 200),
    outcome       payment_outcome NOT NULL,
    -- Why a try was declined, as the provider said it.
    error         text CHECK (error IS NULL OR length(error) <= 500),
    -- 1, 2, 3 for automatic tries; NULL for a payment an admin recorded.
    attempt       smallint CHECK (attempt IS NULL OR attempt >= 1),
    actor_label   text NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_invoice_idx ON payments (invoice_id, attempted_at);

-- When the next automatic try is due (NULL: none), and how many were made.
ALTER TABLE invoices
    ADD COLUMN next_attempt_at  timestamptz,
    ADD COLUMN payment_attempts smallint NOT NULL DEFAULT 0 CHECK (payment_attempts >= 0);
-- The payment job's queue: only invoices awaiting a try.
CREATE INDEX invoices_next_attempt_idx ON invoices (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL AND state IN ('pending', 'unpaid');
