-- Admin (operators' service): second factor for operators, received alerts,
-- and indexes for the operators' searches.

-- TOTP: `operators.totp_secret` (0001) holds the base32 secret; it counts
-- only once confirmed with a valid code.
ALTER TABLE operators ADD COLUMN totp_enabled_at timestamptz;

-- One-time recovery codes for an operator's second factor, stored as SHA-256.
CREATE TABLE operator_recovery_codes (
    operator_id     uuid NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    code_hash       text NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    used_at         timestamptz,
    PRIMARY KEY (operator_id, code_hash)
);

-- Alerts received from Alertmanager's webhook, one row per fingerprint,
-- updated as it fires and resolves.
CREATE TABLE alerts (
    fingerprint     text PRIMARY KEY CHECK (length(fingerprint) BETWEEN 1 AND 200),
    name            text NOT NULL,
    status          text NOT NULL CHECK (status IN ('firing', 'resolved')),
    severity        text,
    summary         text,
    labels          jsonb NOT NULL DEFAULT '{}'::jsonb,
    annotations     jsonb NOT NULL DEFAULT '{}'::jsonb,
    starts_at       timestamptz,
    ends_at         timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_status_idx ON alerts (status, received_at DESC);

-- Prefix searches of the tenants page: subdomain and customer email.
CREATE INDEX tenants_subdomain_prefix_idx ON tenants (subdomain text_pattern_ops);
CREATE INDEX customers_email_prefix_idx ON customers ((lower(email::text)) text_pattern_ops);
CREATE INDEX customers_created_idx ON customers (created_at DESC, id DESC);
-- Tenant list filtered by plan or server, newest first.
CREATE INDEX tenants_plan_created_idx ON tenants (plan_id, created_at DESC, id DESC);
CREATE INDEX tenants_server_created_idx ON tenants (server_id, created_at DESC, id DESC);
-- Operations by kind and state for the operations page.
CREATE INDEX operations_state_created_idx ON operations (state, created_at DESC, id DESC);
