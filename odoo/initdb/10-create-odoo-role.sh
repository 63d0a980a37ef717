#!/bin/bash
# First start of the compose PostgreSQL only (docker-entrypoint-initdb.d):
# creates the role Odoo connects as. It may create databases and owns every
# tenant and template database; it is not a superuser.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="${ODOO_DB_USER:?}" -v password="${ODOO_DB_PASSWORD:?}" <<'SQL'
CREATE ROLE :"role" LOGIN CREATEDB PASSWORD :'password';
SQL
