-- The OCT's compostages come from the same allocator as the PS's (`compostage.rs`): its state
-- moves from the `sequence` row `compostage` ('<unix second>:<last counter>') to the
-- allocator's own one-row table.
CREATE TABLE compostage_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    second INTEGER NOT NULL,
    counter INTEGER NOT NULL
);
INSERT INTO compostage_state (id, second, counter)
    SELECT 1, CAST(substr(value, 1, instr(value, ':') - 1) AS INTEGER),
           CAST(substr(value, instr(value, ':') + 1) AS INTEGER)
    FROM sequence WHERE name = 'compostage' AND instr(value, ':') > 1;
DELETE FROM sequence WHERE name = 'compostage';
