-- First run offers something: with ODOO_TEMPLATES set, the worker creates a
-- plan for each of those templates once it finds it built on a server.
-- Operators may change or delete such a plan; it is never made again,
-- because the decision to seed a template is recorded here, once, whatever
-- becomes of the plan.
ALTER TABLE plans ADD COLUMN created_automatically boolean NOT NULL DEFAULT false;

CREATE TABLE seeded_template_plans (
    template        text PRIMARY KEY CHECK (template ~ '^[a-z0-9_]{1,40}$'),
    -- The plan made for it; NULL once an operator deleted it, or when a plan
    -- on the template already existed and none was made.
    plan_id         uuid REFERENCES plans(id) ON DELETE SET NULL,
    seeded_at       timestamptz NOT NULL DEFAULT now()
);
