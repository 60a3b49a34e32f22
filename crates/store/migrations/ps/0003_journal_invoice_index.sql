-- The invoice index of the journal (one row per invoice number and entry, kept by triggers so
-- that every writer maintains it) and the file-number counter of the PS.
CREATE TABLE journal_invoice (
    invoice TEXT NOT NULL,
    entry INTEGER NOT NULL,
    PRIMARY KEY (invoice, entry)
) WITHOUT ROWID;
INSERT OR IGNORE INTO journal_invoice (invoice, entry)
    SELECT json_each.value, journal.id FROM journal, json_each(journal.invoices)
    WHERE json_valid(journal.invoices);
CREATE TRIGGER journal_invoice_insert AFTER INSERT ON journal
    WHEN json_valid(NEW.invoices) BEGIN
    INSERT OR IGNORE INTO journal_invoice (invoice, entry)
        SELECT value, NEW.id FROM json_each(NEW.invoices);
END;
CREATE TRIGGER journal_invoice_update AFTER UPDATE OF invoices ON journal BEGIN
    DELETE FROM journal_invoice WHERE entry = OLD.id;
    INSERT OR IGNORE INTO journal_invoice (invoice, entry)
        SELECT value, NEW.id FROM json_each(CASE WHEN json_valid(NEW.invoices) THEN NEW.invoices ELSE '[]' END);
END;
CREATE TRIGGER journal_invoice_delete AFTER DELETE ON journal BEGIN
    DELETE FROM journal_invoice WHERE entry = OLD.id;
END;
CREATE TABLE file_number_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next INTEGER NOT NULL
);
