-- A received message's bytes move to `inbox_raw`, a table of their own written once and never
-- updated. SQLite rewrites a whole row on every UPDATE; with the bytes in `inbox`, marking a
-- 48 MB return classified or processed read and wrote 48 MB twice over. `inbox.raw` stays as an
-- empty column (dropping a column rewrites the table).
CREATE TABLE inbox_raw (id INTEGER PRIMARY KEY, raw BLOB NOT NULL);
INSERT INTO inbox_raw (id, raw) SELECT id, raw FROM inbox;
UPDATE inbox SET raw = X'';
