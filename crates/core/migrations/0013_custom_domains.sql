-- Issue 14: customers' own domains with certificates from an ACME CA.
--
-- A domain belongs to one tenant; it is stored IDNA-normalised (A-labels,
-- lower case, no trailing dot), so the UNIQUE constraint is the
-- case-insensitive, IDNA-aware uniqueness across tenants. The worker's
-- `sync_domains` operation moves it along
--   pending_dns -> verified -> issuing -> live, or failed (with `reason`),
-- and renews its certificate; a failed renewal keeps the certificate and the
-- state `live`, and records `renewal_error`.
CREATE TABLE tenant_domains (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    domain          text NOT NULL UNIQUE
                        CHECK (domain = lower(domain) AND length(domain) BETWEEN 3 AND 253
                               AND domain ~ '^[a-z0-9.-]+$'),
    -- What the TXT record at _odoo-saas.<domain> must hold.
    token           text NOT NULL CHECK (token ~ '^[0-9a-f]{32}$'),
    state           text NOT NULL DEFAULT 'pending_dns'
                        CHECK (state IN ('pending_dns', 'verified', 'issuing', 'live', 'failed')),
    -- Why the domain is stuck (the customer reads it), NULL when it is not.
    reason          text CHECK (length(reason) <= 500),
    is_primary      boolean NOT NULL DEFAULT false,
    cert_issuer     text,
    cert_not_after  timestamptz,
    renewed_at      timestamptz,
    renewal_error   text CHECK (length(renewal_error) <= 2000),
    -- An operator asked for a new certificate now (admin's "retry").
    renew_requested_at timestamptz,
    checked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_domains_tenant_idx ON tenant_domains (tenant_id, created_at);
CREATE UNIQUE INDEX tenant_domains_one_primary ON tenant_domains (tenant_id) WHERE is_primary;
CREATE INDEX tenant_domains_expiry_idx ON tenant_domains (cert_not_after) WHERE state = 'live';

-- How many domains one tenant of the plan may have (0: none).
ALTER TABLE plans ADD COLUMN max_domains integer NOT NULL DEFAULT 2 CHECK (max_domains BETWEEN 0 AND 100);

ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN
    ('provision', 'backup', 'restore', 'suspend', 'resume', 'change_plan', 'delete',
     'collect_usage', 'health_check', 'prune_backups', 'reset_admin_password',
     'sync_domains'));
