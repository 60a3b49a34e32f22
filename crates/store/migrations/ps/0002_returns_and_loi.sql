-- Reconciliation of returns (ARL, RSP) with sent lots and invoices, and the local opposition
-- list (LOI) with its dLOI increments.
CREATE TABLE rec_entry (entry INTEGER PRIMARY KEY);
CREATE TABLE rec_lot (
    id INTEGER PRIMARY KEY,
    entry INTEGER NOT NULL,
    number TEXT NOT NULL,
    date TEXT NOT NULL,
    kind TEXT,
    invoices INTEGER NOT NULL,
    sent_ms INTEGER NOT NULL,
    arl TEXT NOT NULL,
    arl_ms INTEGER,
    arl_issued TEXT,
    arl_reasons TEXT NOT NULL DEFAULT '[]',
    arl_return INTEGER
);
CREATE INDEX rec_lot_key ON rec_lot(number, date);
CREATE INDEX rec_lot_arl ON rec_lot(arl);
CREATE TABLE rec_invoice (
    id INTEGER PRIMARY KEY,
    entry INTEGER NOT NULL,
    lot INTEGER,
    number TEXT NOT NULL,
    kind TEXT,
    lot_number TEXT,
    lot_date TEXT,
    sent_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    paid_cents INTEGER NOT NULL DEFAULT 0,
    paid_date TEXT,
    reasons TEXT NOT NULL DEFAULT '[]',
    rsp_ms INTEGER,
    rsp_return INTEGER
);
CREATE INDEX rec_invoice_key ON rec_invoice(number, lot_number, lot_date);
CREATE INDEX rec_invoice_state ON rec_invoice(state);
CREATE INDEX rec_invoice_lot ON rec_invoice(lot);
CREATE TABLE rec_return (
    id INTEGER PRIMARY KEY,
    inbox INTEGER NOT NULL,
    kind TEXT NOT NULL,
    item INTEGER NOT NULL,
    lot_number TEXT NOT NULL,
    lot_date TEXT NOT NULL,
    invoice_number TEXT,
    detail TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    matched INTEGER,
    UNIQUE (inbox, kind, item)
);
CREATE INDEX rec_return_unmatched ON rec_return(matched) WHERE matched IS NULL;
CREATE TABLE rec_note (
    id INTEGER PRIMARY KEY,
    inbox INTEGER NOT NULL,
    kind TEXT NOT NULL,
    compostage TEXT,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (inbox, kind)
);
CREATE TABLE loi_meta (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO loi_meta (id, version) VALUES (1, 0);
CREATE TABLE loi_card (card TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE loi_increment (
    from_version INTEGER PRIMARY KEY,
    to_version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    added INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    applied_ms INTEGER NOT NULL,
    inbox INTEGER
);
CREATE TABLE loi_pending (
    from_version INTEGER PRIMARY KEY,
    to_version INTEGER NOT NULL,
    file BLOB NOT NULL,
    inbox INTEGER,
    received_ms INTEGER NOT NULL
);
