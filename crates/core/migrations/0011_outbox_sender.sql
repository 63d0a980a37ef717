-- Mail leaves through the outbox: requests only store messages, a background
-- sender in the portal delivers them over SMTP. `attempts` and
-- `next_attempt_at` let several senders share the work (a claim is a lease)
-- and let a failing message be retried a bounded number of times.
ALTER TABLE email_outbox
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE sent_at IS NULL;
-- The per-recipient limit counts recent messages to one address.
CREATE INDEX email_outbox_recipient_idx ON email_outbox (lower(to_address), created_at DESC);
