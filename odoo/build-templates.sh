#!/bin/bash
# Builds one template database per plan, tpl_<name>, by letting Odoo install
# the plan's modules itself, then seals it; templates that already exist
# sealed are left alone, so running it again is harmless. Run by the one-shot
# compose service odoo-templates (official Odoo image, which ships psql and
# python3 with passlib), as the Odoo role: it owns every template.
#
# ODOO_TEMPLATES: space-separated "name:module,module,..." entries.
# HOST, PORT, USER, PASSWORD: the Odoo role's database connection.
# Where the image keeps things (defaults are the official image's, outside it
# set them): ODOO_CONFIG (/etc/odoo-saas/odoo.conf), ODOO_DATA_DIR
# (/var/lib/odoo), ODOO_WARM_PORT (8069, a loopback port free for the
# temporary server below).
#
# Assets come with the template. After installing the modules, a temporary Odoo
# serves only the building database on 127.0.0.1:ODOO_WARM_PORT, and
# warm-assets.py (beside this file) signs in with a throw-away password and
# fetches the login page, the web client and every /web/assets bundle they
# reference: Odoo compiles each bundle once and stores it as an attachment in
# the database and its filestore. Every tenant cloned from the template gets
# both, so its customer's first page costs a warm reload, not seconds of SCSS
# and JS compilation. Bundle versions are checksums of the addons' files, so
# they stay valid for as long as the Odoo image is the same.
#
# A template is built as tpl_<name>__building. Odoo's /xmlrpc and /jsonrpc take
# the database name from the request body, so a template that accepts
# connections can be logged into from any tenant's host, and whatever is
# planted in it reaches every new tenant. seal-template.sql (beside this file;
# the test kit runs the same file on the fixture) therefore closes it:
#   - every user with a password gets the hash of a random secret generated
#     here and never kept (provisioning sets the tenant's own admin password),
#     and API keys are deleted: the template keeps no known credential;
#   - the Odoo major version, the installed modules with their versions and
#     the number of asset bundles stored go into COMMENT ON DATABASE as JSON, which the platform reads from
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
odoo_config="${ODOO_CONFIG:-/etc/odoo-saas/odoo.conf}"
filestore_root="${ODOO_DATA_DIR:-/var/lib/odoo}/filestore"
warm_port="${ODOO_WARM_PORT:-8069}"
here="$(dirname "${BASH_SOURCE[0]}")"
seal_sql="$here/seal-template.sql"
warm_py="$here/warm-assets.py"

sql() {
    psql --no-psqlrc --quiet --tuples-only --no-align -v ON_ERROR_STOP=1 -d postgres "$@"
}

database_exists() {
    [[ "$(sql -v name="$1" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name';")" == 1 ]]
}

# Sealed: a template that refuses connections and carries the JSON comment
# with its asset bundles (a template sealed before assets came with it is
# unsealed, warmed and sealed again).
is_sealed() {
    [[ "$(sql -v name="$1" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name'
        AND datistemplate AND NOT datallowconn
        AND shobj_description(oid, 'pg_database') LIKE '{%'
        AND COALESCE((shobj_description(oid, 'pg_database')::jsonb ->> 'asset_bundles')::int, 0) > 0;")" == 1 ]]
}

# A passlib pbkdf2_sha512 hash (Odoo's format) of the secret on stdin, or of a
# random one nobody keeps.
password_hash() {
    python3 -c 'import secrets, sys
from passlib.hash import pbkdf2_sha512
secret = sys.stdin.read() if sys.argv[1:] == ["stdin"] else secrets.token_urlsafe(32)
print(pbkdf2_sha512.using(rounds=600000).hash(secret))' "$@"
}
random_password_hash() { password_hash </dev/null; }

# Serves only database $1 on loopback and fetches every asset bundle of the
# login page and the web client, signed in as its admin (user 2) with a
# throw-away password that the seal replaces right after.
warm_assets() {
    local building="$1" secret hash login pid status=0
    secret="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    hash="$(printf '%s' "$secret" | password_hash stdin)"
    [[ "$hash" == "\$pbkdf2-sha512\$"* ]] || { echo "build-templates: could not hash a password" >&2; exit 1; }
    login="$(psql --no-psqlrc --quiet --tuples-only --no-align -v ON_ERROR_STOP=1 -d "$building" \
        -v hash="$hash" <<<"UPDATE res_users SET password = :'hash' WHERE id = 2 RETURNING login;")"
    [[ -n "$login" ]] || { echo "build-templates: $building has no admin user (id 2)" >&2; exit 1; }

    odoo --config "$odoo_config" \
        --db_host "$PGHOST" --db_port "$PGPORT" --db_user "$PGUSER" --db_password "$PGPASSWORD" \
        --database "$building" --db-filter "^${building}\$" \
        --http-interface 127.0.0.1 --http-port "$warm_port" \
        --workers 0 --max-cron-threads 0 &
    pid=$!
    python3 "$warm_py" "http://127.0.0.1:${warm_port}" "$building" "$login" "$secret" || status=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ "$status" == 0 ]] || { echo "build-templates: warming the assets of $building failed" >&2; exit 1; }
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
ALTER DATABASE :"building" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true;
SQL
        # Odoo serves the files of database x from filestore/x.
        if [[ -d "${filestore_root}/${template}" ]]; then
            rm -rf "${filestore_root:?}/${building}"
            mv "${filestore_root}/${template}" "${filestore_root}/${building}"
        fi
        warm_assets "$building"
        if [[ -d "${filestore_root}/${building}" ]]; then
            mv "${filestore_root}/${building}" "${filestore_root}/${template}"
        fi
        seal "$building" "$template"
        echo "build-templates: $template sealed"
        continue
    fi

    echo "build-templates: building $template with modules $modules"
    rm -rf "${filestore_root:?}/${building}" "${filestore_root:?}/${template}"

    odoo --config "$odoo_config" \
        --db_host "$PGHOST" --db_port "$PGPORT" --db_user "$PGUSER" --db_password "$PGPASSWORD" \
        --database "$building" --init "$modules" \
        --without-demo=all --stop-after-init --no-http --workers 0 --max-cron-threads 0
    warm_assets "$building"

    # The filestore first: a sealed template always has its files in place.
    if [[ -d "${filestore_root}/${building}" ]]; then
        mv "${filestore_root}/${building}" "${filestore_root}/${template}"
    fi
    seal "$building" "$template"
    echo "build-templates: $template ready"
done
