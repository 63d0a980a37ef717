#!/bin/bash
# Builds one template database per plan, tpl_<name>, by letting Odoo install
# the plan's modules itself, then seals it; templates that already exist
# sealed are left alone, so running it again is harmless. Run by the one-shot
# compose service odoo-templates (official Odoo image, which ships psql and
# python3 with passlib), as the Odoo role: it owns every template.
#
# ODOO_TEMPLATES: space-separated "name:module,module,..." entries.
# HOST, PORT, USER, PASSWORD: the Odoo role's database connection.
#
# A template is built as tpl_<name>__building. Odoo's /xmlrpc and /jsonrpc take
# the database name from the request body, so a template that accepts
# connections can be logged into from any tenant's host, and whatever is
# planted in it reaches every new tenant. seal-template.sql (beside this file;
# the test kit runs the same file on the fixture) therefore closes it:
#   - every user with a password gets the hash of a random secret generated
#     here and never kept (provisioning sets the tenant's own admin password),
#     and API keys are deleted: the template keeps no known credential;
#   - the Odoo major version and the installed modules with their versions go
#     into COMMENT ON DATABASE as JSON, which the platform reads from
#     pg_shdescription without connecting;
#   - connections are refused and closed (an Odoo cron worker may have
#     connected), then, in one transaction, it is renamed to tpl_<name> and
#     marked IS_TEMPLATE true ALLOW_CONNECTIONS false: Odoo never lists, serves
#     or runs crons for it, and CREATE DATABASE ... TEMPLATE still clones it.
# An interrupted run never leaves something that looks like a finished
# template. A tpl_<name> made by an earlier version of this script (open to
# connections or without the comment) is renamed back to __building and sealed.
set -euo pipefail

: "${ODOO_TEMPLATES:?ODOO_TEMPLATES must list name:modules entries}"
export PGHOST="${HOST:?}" PGPORT="${PORT:-5432}" PGUSER="${USER:?}" PGPASSWORD="${PASSWORD:?}"
filestore_root=/var/lib/odoo/filestore
seal_sql="$(dirname "${BASH_SOURCE[0]}")/seal-template.sql"

sql() {
    psql --no-psqlrc --quiet --tuples-only --no-align -v ON_ERROR_STOP=1 -d postgres "$@"
}

database_exists() {
    [[ "$(sql -v name="$1" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name';")" == 1 ]]
}

# Sealed: a template that refuses connections and carries the JSON comment.
is_sealed() {
    [[ "$(sql -v name="$1" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name'
        AND datistemplate AND NOT datallowconn
        AND shobj_description(oid, 'pg_database') LIKE '{%';")" == 1 ]]
}

# A passlib pbkdf2_sha512 hash (Odoo's format) of a random secret nobody keeps.
random_password_hash() {
    python3 -c 'import secrets
from passlib.hash import pbkdf2_sha512
print(pbkdf2_sha512.using(rounds=600000).hash(secrets.token_urlsafe(32)))'
}

seal() {
    local hash
    hash="$(random_password_hash)"
    [[ "$hash" == "\$pbkdf2-sha512\$"* ]] || { echo "build-templates: could not hash a password" >&2; exit 1; }
    sql -v building="$1" -v template="$2" -v admin_hash="$hash" -f "$seal_sql"
}

for _ in $(seq 1 60); do
    pg_isready --quiet && break
    sleep 1
done

for spec in $ODOO_TEMPLATES; do
    name=${spec%%:*}
    modules=${spec#*:}
    if [[ ! "$name" =~ ^[a-z0-9_]{1,40}$ || -z "$modules" || "$modules" == "$spec" ]]; then
        echo "build-templates: bad entry '$spec' (expected name:module,module with name in [a-z0-9_])" >&2
        exit 2
    fi
    template="tpl_${name}"
    building="${template}__building"

    if is_sealed "$template"; then
        echo "build-templates: $template exists, skipped"
        continue
    fi
    sql -v name="$building" <<<'DROP DATABASE IF EXISTS :"name" WITH (FORCE);'

    if database_exists "$template"; then
        echo "build-templates: $template is not sealed (built by an earlier version); sealing it"
        sql -v name="$template" -v building="$building" <<'SQL'
ALTER DATABASE :"name" WITH ALLOW_CONNECTIONS false;
SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = :'name' \gset
ALTER DATABASE :"name" RENAME TO :"building";
ALTER DATABASE :"building" WITH ALLOW_CONNECTIONS true;
SQL
        seal "$building" "$template"
        echo "build-templates: $template sealed"
        continue
    fi

    echo "build-templates: building $template with modules $modules"
    rm -rf "${filestore_root:?}/${building}" "${filestore_root:?}/${template}"

    odoo --config /etc/odoo-saas/odoo.conf \
        --db_host "$PGHOST" --db_port "$PGPORT" --db_user "$PGUSER" --db_password "$PGPASSWORD" \
        --database "$building" --init "$modules" \
        --without-demo=all --stop-after-init --no-http --workers 0 --max-cron-threads 0

    # The filestore first: a sealed template always has its files in place.
    if [[ -d "${filestore_root}/${building}" ]]; then
        mv "${filestore_root}/${building}" "${filestore_root}/${template}"
    fi
    seal "$building" "$template"
    echo "build-templates: $template ready"
done
