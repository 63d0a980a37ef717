#!/bin/bash
# Builds one template database per plan, tpl_<name>, by letting Odoo install
# the plan's modules itself; templates that already exist are left alone, so
# running it again is harmless. Run by the one-shot compose service
# odoo-templates (official Odoo image, which ships psql).
#
# ODOO_TEMPLATES: space-separated "name:module,module,..." entries.
# HOST, PORT, USER, PASSWORD: the Odoo role's database connection.
#
# A template is built as tpl_<name>__building and renamed when complete, so
# an interrupted run never leaves something that looks like a finished
# template. Finished templates are marked IS_TEMPLATE: Odoo then never
# connects to them, and the worker clones them with CREATE DATABASE ... TEMPLATE.
set -euo pipefail

: "${ODOO_TEMPLATES:?ODOO_TEMPLATES must list name:modules entries}"
export PGHOST="${HOST:?}" PGPORT="${PORT:-5432}" PGUSER="${USER:?}" PGPASSWORD="${PASSWORD:?}"
filestore_root=/var/lib/odoo/filestore

sql() {
    psql --no-psqlrc --quiet --tuples-only --no-align -v ON_ERROR_STOP=1 -d postgres "$@"
}

database_exists() {
    [[ "$(sql -v name="$1" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name';")" == 1 ]]
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

    if database_exists "$template"; then
        echo "build-templates: $template exists, skipped"
        continue
    fi

    echo "build-templates: building $template with modules $modules"
    sql -v name="$building" <<<'DROP DATABASE IF EXISTS :"name" WITH (FORCE);'
    rm -rf "${filestore_root:?}/${building}"

    odoo --config /etc/odoo-saas/odoo.conf \
        --db_host "$PGHOST" --db_port "$PGPORT" --db_user "$PGUSER" --db_password "$PGPASSWORD" \
        --database "$building" --init "$modules" \
        --without-demo=all --stop-after-init --no-http --workers 0 --max-cron-threads 0

    sql -v from="$building" -v to="$template" <<<'ALTER DATABASE :"from" RENAME TO :"to";'
    if [[ -d "${filestore_root}/${building}" ]]; then
        mv "${filestore_root}/${building}" "${filestore_root}/${template}"
    fi
    sql -v name="$template" <<<'ALTER DATABASE :"name" WITH IS_TEMPLATE true;'
    echo "build-templates: $template ready"
done
