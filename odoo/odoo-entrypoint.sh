#!/bin/bash
# Starts Odoo through the official image's /entrypoint.sh with odoo.conf from
# this directory plus the master password from the environment (Odoo cannot
# read it from a variable itself). The rendered file lives in /tmp, mode 600.
set -euo pipefail

: "${ODOO_MASTER_PASSWORD:?ODOO_MASTER_PASSWORD must be set (see .env.example)}"

rendered=$(mktemp /tmp/odoo.conf.XXXXXX)
chmod 600 "$rendered"
{
    cat /etc/odoo-saas/odoo.conf
    printf '\nadmin_passwd = %s\n' "$ODOO_MASTER_PASSWORD"
} >"$rendered"

export ODOO_RC="$rendered"
exec /entrypoint.sh "$@"
