-- What each invoice line was priced on. A month already billed is corrected for what changed
-- since (the time on a plan, late usage), never repriced at a fee or tiers the admin set
-- later, and a month's usage is never billed again under another plan.
ALTER TABLE invoice_lines
    ADD COLUMN priced_fee   numeric(26, 6) CHECK (priced_fee >= 0),
    ADD COLUMN priced_units bigint CHECK (priced_units >= 0);

-- Lines issued before: a monthly fee line's unit price is its fee, a usage line's quantity
-- its units, and a late-usage adjustment names the units it brought the month to.
UPDATE invoice_lines SET priced_fee = unit_price WHERE kind = 'monthly_fee' AND unit_price >= 0;
UPDATE invoice_lines SET priced_units = quantity::bigint
WHERE kind = 'usage' AND metric_id IS NOT NULL AND quantity >= 0 AND quantity = trunc(quantity);
UPDATE invoice_lines SET priced_units = substring(description FROM 'now ([0-9]{1,18}) units')::bigint
WHERE kind = 'adjustment' AND metric_id IS NOT NULL AND description ~ 'now [0-9]{1,18} units';
