-- Which entry a message sent again (retry, resend) replaces, and why. A table of its own, so
-- that entries keep their shape and an old store gains the links without a rewrite.
CREATE TABLE journal_link (
    entry INTEGER PRIMARY KEY,
    replaces INTEGER NOT NULL,
    why TEXT NOT NULL
);
CREATE INDEX journal_link_replaces ON journal_link(replaces);
