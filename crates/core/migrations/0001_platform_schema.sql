-- Platform schema: the single source of truth for customers, tenants and the
-- operations that change them. Tenant databases live on the Odoo servers'
-- clusters, never here.

CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE operators (
    id              uuid PRIMARY KEY,
    email           citext NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    display_name    text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'operator', 'viewer')),
    totp_secret     text,
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz
);

CREATE TABLE customers (
    id              uuid PRIMARY KEY,
    email           citext NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    company_name    text NOT NULL CHECK (length(company_name) BETWEEN 1 AND 200),
    password_hash   text NOT NULL,
    email_verified_at timestamptz,
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plans (
    id              uuid PRIMARY KEY,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_-]{1,39}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    max_users       integer NOT NULL CHECK (max_users > 0),
    max_storage_mb  integer NOT NULL CHECK (max_storage_mb > 0),
    max_backups     integer NOT NULL CHECK (max_backups >= 0),
    max_instances   integer NOT NULL DEFAULT 1 CHECK (max_instances > 0),
    template        text NOT NULL CHECK (template ~ '^[a-z0-9_]{1,40}$'),
    modules         text[] NOT NULL DEFAULT '{}',
    trial_days      integer NOT NULL DEFAULT 0 CHECK (trial_days >= 0),
    grace_days      integer NOT NULL DEFAULT 14 CHECK (grace_days >= 0),
    backup_hour_utc integer NOT NULL DEFAULT 2 CHECK (backup_hour_utc BETWEEN 0 AND 23),
    price_cents     bigint NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    currency        text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE servers (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    public_url      text NOT NULL,
    internal_url    text NOT NULL,
    pg_url          text NOT NULL,
    odoo_db_role    text NOT NULL DEFAULT 'odoo',
    filestore_root  text NOT NULL,
    capacity        integer NOT NULL CHECK (capacity >= 0),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    subdomain       text NOT NULL CHECK (subdomain ~ '^[a-z0-9]([a-z0-9-]{1,61})[a-z0-9]$'),
    customer_id     uuid NOT NULL REFERENCES customers(id) ON DELETE RESTRICT,
    plan_id         uuid NOT NULL REFERENCES plans(id) ON DELETE RESTRICT,
    server_id       uuid REFERENCES servers(id) ON DELETE RESTRICT,
    state           text NOT NULL CHECK (state IN
                        ('pending', 'provisioning', 'active', 'suspended', 'failed', 'deleting', 'deleted')),
    db_name         text NOT NULL CHECK (db_name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    suspend_reason  text,
    trial_ends_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    suspended_at    timestamptz,
    deleted_at      timestamptz,
    usage_db_bytes  bigint NOT NULL DEFAULT 0 CHECK (usage_db_bytes >= 0),
    usage_filestore_bytes bigint NOT NULL DEFAULT 0 CHECK (usage_filestore_bytes >= 0),
    usage_users     integer NOT NULL DEFAULT 0 CHECK (usage_users >= 0),
    usage_collected_at timestamptz,
    CHECK ((state = 'deleted') = (deleted_at IS NOT NULL))
);

-- A subdomain is unique among tenants that still exist.
CREATE UNIQUE INDEX tenants_live_subdomain_key ON tenants (subdomain) WHERE state <> 'deleted';
-- A deleted tenant's database is gone, so its name may be used again.
CREATE UNIQUE INDEX tenants_live_db_name_key ON tenants (db_name) WHERE state <> 'deleted';
CREATE INDEX tenants_state_created_idx ON tenants (state, created_at DESC, id);
CREATE INDEX tenants_customer_idx ON tenants (customer_id, created_at DESC);
CREATE INDEX tenants_created_idx ON tenants (created_at DESC, id DESC);
CREATE INDEX tenants_subdomain_idx ON tenants (subdomain, id);
CREATE INDEX tenants_plan_idx ON tenants (plan_id);
CREATE INDEX tenants_server_idx ON tenants (server_id);

CREATE TABLE backups (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    object_key      text NOT NULL UNIQUE,
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    kind            text NOT NULL CHECK (kind IN ('scheduled', 'manual', 'pre_delete', 'pre_restore', 'upload')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz
);
CREATE INDEX backups_tenant_created_idx ON backups (tenant_id, created_at DESC);
CREATE INDEX backups_expires_idx ON backups (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE operations (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN
                        ('provision', 'backup', 'restore', 'suspend', 'resume', 'change_plan', 'delete',
                         'collect_usage', 'health_check', 'prune_backups')),
    args            jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    last_error      text,
    requested_by    text NOT NULL,
    worker          text,
    run_after       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    heartbeat_at    timestamptz
);
-- At most one queued operation of a kind per tenant (a repeated request returns it).
CREATE UNIQUE INDEX operations_one_queued_per_kind ON operations (tenant_id, kind) WHERE state = 'queued';
-- At most one running operation per tenant.
CREATE UNIQUE INDEX operations_one_running_per_tenant ON operations (tenant_id) WHERE state = 'running';
CREATE INDEX operations_state_idx ON operations (state, run_after);
CREATE INDEX operations_tenant_created_idx ON operations (tenant_id, created_at DESC);
CREATE INDEX operations_created_idx ON operations (created_at DESC, id DESC);

CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    actor           text NOT NULL,
    action          text NOT NULL,
    target          text,
    address         inet,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC, id DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, created_at DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target, created_at DESC);
