-- The invoice numbers each PS had forwarded as DRE or as contract-99 FSE, for the exclusivity of
-- R3.4 (created empty: lots forwarded before it are not in it, their bytes are not kept).
CREATE TABLE IF NOT EXISTS forwarded_invoices (
    ps_number      TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    nature         TEXT NOT NULL,
    lot_hash       TEXT NOT NULL,
    destination    TEXT NOT NULL,
    spool_id       TEXT NOT NULL,
    at             INTEGER NOT NULL,
    PRIMARY KEY (ps_number, invoice_number, nature, lot_hash)
);
-- What the quarantine's bound and retention removed, and the index they search by. Programs up
-- to schema 4 created these at every opening without a version of their own: a version 3
-- database may lack them, a version 4 one always has them (hence IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS quarantine_purged (
    id    INTEGER PRIMARY KEY REFERENCES quarantine(id),
    bytes INTEGER NOT NULL,
    why   TEXT NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_by_state ON quarantine(state, id);
