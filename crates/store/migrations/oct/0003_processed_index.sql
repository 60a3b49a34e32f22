-- The processed index: the lots accepted invoice messages forwarded (by the hash of their sealed
-- bytes) and the compostages they used (with the hash of their file), so that a replayed or
-- retried invoice file is never forwarded twice.
CREATE TABLE IF NOT EXISTS forwarded_lots (
    lot_hash    TEXT PRIMARY KEY,
    ps_number   TEXT NOT NULL,
    lot_number  TEXT NOT NULL,
    lot_date    TEXT NOT NULL,
    file_id     TEXT NOT NULL,
    destination TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    spool_id    TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS compostages (
    sender_number TEXT NOT NULL,
    compostage    TEXT NOT NULL,
    file_hash     TEXT NOT NULL,
    spool_id      TEXT NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (sender_number, compostage)
);
