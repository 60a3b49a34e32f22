-- The payment lines (576 flat payments and deductions) and insurer notices (900) of NOEMIE
-- returns.
CREATE TABLE rec_payment_line (
    id INTEGER PRIMARY KEY,
    content_key TEXT NOT NULL UNIQUE,
    inbox INTEGER NOT NULL,
    reference TEXT NOT NULL,
    file TEXT NOT NULL,
    kind TEXT NOT NULL,
    accounting_date TEXT,
    code TEXT NOT NULL,
    label TEXT NOT NULL,
    period TEXT,
    invoice_number TEXT,
    lot_number TEXT,
    amount_cents INTEGER NOT NULL,
    detail TEXT NOT NULL,
    received_ms INTEGER NOT NULL
);
