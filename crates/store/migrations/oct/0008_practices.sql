-- The PS accounts (practices) served by the OCT, as data: once seeded from the configuration's
-- `[[sender]]` blocks, the database is the truth (`svoct oct ps`). Numbers are unique by their
-- significant digits (`svoct_formats::PaddedNumber`: `sender_key`, `ps_key`), addresses
-- case-insensitively (ASCII, as `eq_ignore_ascii_case` compares them).
CREATE TABLE IF NOT EXISTS practice (
    id            INTEGER PRIMARY KEY,
    address       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    sender_number TEXT NOT NULL,
    sender_key    TEXT NOT NULL UNIQUE,
    ps_number     TEXT NOT NULL,
    ps_key        TEXT NOT NULL UNIQUE,
    category      TEXT NOT NULL,
    mailbox       TEXT,
    certificate   TEXT,
    state         TEXT NOT NULL DEFAULT 'active',
    state_reason  TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- Every change of a practice, never updated nor deleted: who (the operator, "config" for the
-- seeding), what, and the values before -> after. The address is copied so that the trail of a
-- removed practice still reads.
CREATE TABLE IF NOT EXISTS practice_audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    practice_id INTEGER NOT NULL,
    address     TEXT NOT NULL,
    change      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS practice_audit_by_practice ON practice_audit(practice_id, id);
-- Bumped by every change of `practice` (in the same transaction): the running workers read it
-- once per batch and reload the directory only when it moved.
CREATE TABLE IF NOT EXISTS practice_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT OR IGNORE INTO practice_generation (id, generation) VALUES (1, 0);
-- A PS's recent messages (`svoct oct ps show`).
CREATE INDEX IF NOT EXISTS processed_by_sender ON processed(mail_from COLLATE NOCASE, at);
