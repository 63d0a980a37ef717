#!/bin/sh
# Writes the admin webhook's bearer token from the environment into a file
# on tmpfs (config.yml: credentials_file), then starts Alertmanager with the
# image's usual arguments. The token never lands in the config or a volume.
set -eu

: "${ALERT_WEBHOOK_TOKEN:?ALERT_WEBHOOK_TOKEN must be set (see .env.example)}"
umask 077
printf '%s' "$ALERT_WEBHOOK_TOKEN" >/run/alertmanager/webhook-token

exec /bin/alertmanager \
    --config.file=/etc/alertmanager/config.yml \
    --storage.path=/alertmanager \
    "$@"
