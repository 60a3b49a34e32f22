-- The invoice key index covers the match (number, kind, lot number and date), so matching an
-- RSP item reads the index only.
DROP INDEX rec_invoice_key;
CREATE INDEX rec_invoice_key ON rec_invoice(number, kind, lot_number, lot_date);
