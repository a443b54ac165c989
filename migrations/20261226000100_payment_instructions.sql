-- How partners pay an invoice (bank details, a payment page), printed on issued invoices.
-- Frozen into each invoice's issuer when it is issued, like the provider's name and address.
ALTER TABLE billing_settings
    ADD COLUMN payment_instructions text NOT NULL DEFAULT ''
        CHECK (length(payment_instructions) <= 2000);
