#!/usr/bin/env bash
# Installs .ci/python-tools.txt into a virtualenv (default
# ~/.cache/odoo-saas/pytools, or $ODOO_SAAS_PYTOOLS). Idempotent: does
# nothing when that exact list is already installed; quiet on success.
set -euo pipefail
cd "$(dirname "$0")"
venv=${ODOO_SAAS_PYTOOLS:-$HOME/.cache/odoo-saas/pytools}
marker=$venv/.installed-$(sha256sum python-tools.txt | cut -c1-16)
[ -f "$marker" ] && exit 0
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
[ -f "$marker" ] && exit 0
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r python-tools.txt
touch "$marker"
