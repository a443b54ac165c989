-- A provider that moves from prepaid to postpaid during a month has already issued that
-- month's prepaid invoice (its fees in advance); the postpaid invoice for the same month bills
-- its usage once it ends. One invoice per account, period, currency and billing mode.
ALTER TABLE invoices DROP CONSTRAINT invoices_account_id_period_start_currency_key;
ALTER TABLE invoices ADD CONSTRAINT invoices_account_period_currency_mode_key
    UNIQUE (account_id, period_start, currency, mode);
