-- Why a pending row's last attempt failed, typed: 1 when the relay refused the OCT's own SMTP
-- login (the operator must fix `[delivery.smtp]`; the row is retried, never failed for it).
-- Programs before this step told such rows by the text their error starts with.
ALTER TABLE outbox ADD COLUMN login_refused INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET login_refused = 1
    WHERE state = 'pending' AND last_error LIKE 'relay refused the OCT''s SMTP login%';
