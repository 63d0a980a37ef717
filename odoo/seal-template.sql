-- Seals a template database Odoo has just built, so that nothing can reach it
-- or log into what it hands down to every new tenant:
--   1. no known credential: every user with a password gets :'admin_hash' (a
--      hash of a random secret nobody keeps; provisioning sets the tenant's own
--      admin password), API keys are deleted;
--   2. what the platform needs to know (Odoo major version, installed modules
--      with their versions, how many compiled asset bundles it stores for its
--      clones) goes into COMMENT ON DATABASE as compact JSON, read from
--      pg_shdescription without connecting;
--   3. connections are closed and refused, the database is renamed from
--      :"building" to :"template" and marked IS_TEMPLATE with ALLOW_CONNECTIONS
--      false: Odoo never lists or serves it, XML-RPC cannot log into it, and
--      CREATE DATABASE ... TEMPLATE still clones it.
--
-- Run by psql connected to another database of the cluster (the maintenance
-- database), as the template's owner (the Odoo role) or a superuser:
--   psql -X -v ON_ERROR_STOP=1 -v building=tpl_x__building -v template=tpl_x \
--        -v admin_hash='$pbkdf2-sha512$...' -f seal-template.sql postgres
-- odoo/build-templates.sh runs it after Odoo built the template; the test kit
-- runs this very file on the fixture, so every test clones a sealed template.

\set ON_ERROR_STOP on
SELECT current_database() AS seal_home \gset

\connect :"building"
BEGIN;
UPDATE res_users SET password = :'admin_hash'
 WHERE password IS NOT NULL AND password <> '';
-- An API key logs in like a password (Odoo 14+); a template keeps none.
DO $$
BEGIN
    IF to_regclass('public.res_users_apikeys') IS NOT NULL THEN
        DELETE FROM res_users_apikeys;
    END IF;
END $$;
-- Compiled asset bundles (build-templates.sh has Odoo make them): every clone
-- inherits them with the filestore. A database without Odoo's attachment table
-- (the test kit's fixture) has none.
SELECT to_regclass('public.ir_attachment') IS NOT NULL AS has_attachments \gset
\if :has_attachments
SELECT count(*) AS asset_bundles FROM ir_attachment
 WHERE url LIKE '/web/assets/%' AND res_model = 'ir.ui.view' AND public \gset
\else
\set asset_bundles 0
\endif
-- Odoo writes a module's version as <major>.<minor>.<module version>, e.g.
-- 18.0.1.3 for base: the first two parts are the Odoo series.
SELECT jsonb_build_object(
           'odoo', (SELECT substring(latest_version FROM '^[0-9]+\.[0-9]+')
                      FROM ir_module_module WHERE name = 'base'),
           'modules', COALESCE((SELECT jsonb_object_agg(name, COALESCE(latest_version, ''))
                                  FROM ir_module_module WHERE state = 'installed'),
                               '{}'::jsonb),
           'asset_bundles', :asset_bundles::int
       )::text AS template_meta \gset
COMMIT;

\connect :"seal_home"
-- Refused first, so an Odoo cron worker that was connected cannot come back
-- between the termination and the rename.
ALTER DATABASE :"building" WITH ALLOW_CONNECTIONS false;
SELECT count(pg_terminate_backend(pid, 5000)) AS closed_sessions
  FROM pg_stat_activity WHERE datname = :'building' AND pid <> pg_backend_pid() \gset
-- One transaction: a database named :"template" is always a complete, sealed
-- template; an interruption before COMMIT leaves only :"building", which the
-- next build drops.
BEGIN;
COMMENT ON DATABASE :"building" IS :'template_meta';
ALTER DATABASE :"building" RENAME TO :"template";
ALTER DATABASE :"template" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false;
COMMIT;
