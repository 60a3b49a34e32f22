-- Outgoing message bodies move out of `outbox` into `outbox_body`, so that the state changes
-- of a delivery rewrite a small row instead of the whole message.
CREATE TABLE IF NOT EXISTS outbox_body (
    id  INTEGER PRIMARY KEY REFERENCES outbox(id),
    raw BLOB NOT NULL
);
INSERT OR IGNORE INTO outbox_body (id, raw) SELECT id, raw FROM outbox;
ALTER TABLE outbox DROP COLUMN raw;
