-- The concentrator's state: processed messages, the outbox (bodies inline until step 2), the
-- quarantine, the lots the OCT built itself and its named counters.
CREATE TABLE IF NOT EXISTS processed (
    spool_id   TEXT PRIMARY KEY,
    digest     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    reason     TEXT,
    mail_from  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    summary    TEXT NOT NULL,
    at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY,
    message_id   TEXT NOT NULL UNIQUE,
    spool_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    mail_from    TEXT NOT NULL,
    rcpt         TEXT NOT NULL,
    raw          BLOB NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT,
    created      INTEGER NOT NULL,
    sent         INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt);
CREATE TABLE IF NOT EXISTS quarantine (
    id         INTEGER PRIMARY KEY,
    spool_id   TEXT NOT NULL UNIQUE,
    code       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    mail_from  TEXT NOT NULL,
    rcpt       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    raw        BLOB NOT NULL,
    state      TEXT NOT NULL DEFAULT 'held',
    at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS own_lots (
    lot_number   TEXT NOT NULL,
    lot_date     TEXT NOT NULL,
    file_id      TEXT NOT NULL,
    organisation TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    spool_id     TEXT NOT NULL,
    arl_status   TEXT,
    arl_detail   TEXT,
    arl_at       INTEGER,
    PRIMARY KEY (lot_number, lot_date, file_id)
);
CREATE TABLE IF NOT EXISTS sequence (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
