-- Queue control (`svoct oct queue`): an outbox row can be `held` (never claimed by a sender
-- until released) or `deleted` (abandoned by an operator, never sent). Both are values of
-- `state`; this step keeps why and when a row was abandoned, which `queue show` prints and
-- which must outlive the row's `last_error` (the failure that led the operator to give up).
ALTER TABLE outbox ADD COLUMN abandoned_reason TEXT;
ALTER TABLE outbox ADD COLUMN abandoned_at INTEGER;
