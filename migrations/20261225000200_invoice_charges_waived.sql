-- A cancelled invoice either waives its charges (they are not billed again) or, by default,
-- leaves them owed, so the next run bills them again as adjustments. The run counts the lines
-- of every invoice that is not cancelled, and of cancelled ones that waived their charges.
ALTER TABLE invoices ADD COLUMN charges_waived boolean NOT NULL DEFAULT false;
ALTER TABLE invoices ADD CONSTRAINT invoices_waived_only_when_cancelled
    CHECK (NOT charges_waived OR state = 'cancelled');
