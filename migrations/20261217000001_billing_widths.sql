-- Invoice money columns wide enough for any plan fee and any month of usage: a plan's
-- fee is numeric(14, 4) (up to 10^10, e.g. a 100,000,000 VND fee), a usage line is up to
-- i64::MAX units at a numeric(14, 6) price. 30 digits stays within what the billing code
-- computes exactly (28-29 significant digits), so what it computes is what is stored.
ALTER TABLE invoice_lines
    ALTER COLUMN quantity   TYPE numeric(26, 6),
    ALTER COLUMN unit_price TYPE numeric(26, 6),
    ALTER COLUMN amount     TYPE numeric(30, 4);
ALTER TABLE invoices
    ALTER COLUMN subtotal TYPE numeric(30, 4),
    ALTER COLUMN tax      TYPE numeric(30, 4),
    ALTER COLUMN total    TYPE numeric(30, 4);
