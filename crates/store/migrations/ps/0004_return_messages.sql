-- One row per recorded return message (idempotence without a row per matched item); the
-- payment-state index goes (its upkeep doubled the cost of applying an RSP, and the worklists
-- scan the table anyway).
CREATE TABLE rec_message (inbox INTEGER NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (inbox, kind)) WITHOUT ROWID;
DROP INDEX rec_invoice_state;
