-- Secrets an operation needs and nobody may keep: the Odoo admin password a
-- customer chose, sealed (XChaCha20-Poly1305 under a key derived from
-- SECRET_KEY, bound to the tenant and the purpose) by the request and opened
-- only by the worker that hashes it. Never part of `args`, so no API, page or
-- audit entry can show it.
CREATE TABLE operation_secrets (
    operation_id    uuid PRIMARY KEY REFERENCES operations(id) ON DELETE CASCADE,
    purpose         text NOT NULL CHECK (purpose IN ('odoo_admin_password')),
    sealed          bytea NOT NULL CHECK (length(sealed) BETWEEN 41 AND 8192),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The sealed copy goes when its operation ends, whichever path ends it
-- (success, failure for good, cancellation, a takeover that ran out of
-- attempts): a trigger, so no code path can forget it.
CREATE FUNCTION erase_operation_secrets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM operation_secrets WHERE operation_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER operations_erase_secrets
    AFTER UPDATE OF state ON operations
    FOR EACH ROW WHEN (NEW.state IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION erase_operation_secrets();

-- A customer who lost their Odoo admin password sets a new one: the worker
-- writes its hash into the tenant's database.
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN
    ('provision', 'backup', 'restore', 'suspend', 'resume', 'change_plan', 'delete',
     'collect_usage', 'health_check', 'prune_backups', 'reset_admin_password'));
