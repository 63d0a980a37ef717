-- Portal accounts: one-time links (email verification, password reset) stored
-- as SHA-256, and the outbox of emails sent without an SMTP server (operators
-- read it in admin).

CREATE TABLE customer_tokens (
    id              uuid PRIMARY KEY,
    customer_id     uuid NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    purpose         text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    token_hash      text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX customer_tokens_customer_idx ON customer_tokens (customer_id, purpose);

CREATE TABLE email_outbox (
    id              uuid PRIMARY KEY,
    to_address      text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 254),
    subject         text NOT NULL CHECK (length(subject) <= 500),
    body_text       text NOT NULL,
    -- What the message is for, e.g. verify_email, reset_password, sign_up_existing.
    purpose         text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    error           text
);
CREATE INDEX email_outbox_created_idx ON email_outbox (created_at DESC, id DESC);
CREATE INDEX email_outbox_to_idx ON email_outbox (to_address, created_at DESC);
