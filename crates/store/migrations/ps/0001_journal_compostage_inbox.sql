-- The journal, the compostage allocator and the inbox.
CREATE TABLE journal (
    id INTEGER PRIMARY KEY,
    direction TEXT NOT NULL,
    profile TEXT NOT NULL,
    subject TEXT NOT NULL,
    compostage TEXT,
    message_id TEXT,
    file_name TEXT,
    lots TEXT NOT NULL DEFAULT '[]',
    invoices TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    server_answer TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX journal_subject ON journal(subject);
CREATE INDEX journal_compostage ON journal(compostage);
CREATE INDEX journal_status ON journal(status);
CREATE TABLE compostage_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    second INTEGER NOT NULL,
    counter INTEGER NOT NULL
);
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    uidl TEXT NOT NULL,
    raw BLOB NOT NULL,
    size INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    classification TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    deleted_on_server INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, uidl)
);
CREATE INDEX inbox_state ON inbox(state);
