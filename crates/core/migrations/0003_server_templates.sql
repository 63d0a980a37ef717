-- Templates the worker found on each Odoo server (tpl_<name> databases),
-- refreshed periodically; placement only picks servers holding the plan's
-- template.
CREATE TABLE server_templates (
    server_id       uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name ~ '^[a-z0-9_]{1,40}$'),
    size_bytes      bigint NOT NULL DEFAULT 0,
    modules         text[] NOT NULL DEFAULT '{}',
    seen_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, name)
);
