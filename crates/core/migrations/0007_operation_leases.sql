-- Each attempt of an operation holds a lease: a fresh token written when the
-- attempt claims the row and renewed (heartbeat_at) while it runs. Only the
-- attempt whose token is current may record a result; a takeover (the
-- reconciler re-queuing a stale attempt) clears it.
ALTER TABLE operations ADD COLUMN lease uuid;
