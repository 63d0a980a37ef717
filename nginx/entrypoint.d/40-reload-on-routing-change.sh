#!/bin/sh
# Started by the nginx image's entrypoint: polls the routing map directory
# the worker writes and reloads nginx when the maps change. A map that does
# not pass `nginx -t` is reported and not loaded; the running configuration
# stays in place until the worker writes a good one.
set -eu

dir="${ROUTING_MAP_DIR:?ROUTING_MAP_DIR must be set}"
interval="${ROUTING_MAP_POLL_SECS:-2}"

fingerprint() {
    # Names and contents of every map, the tenants' and the custom domains'
    # (domains/: a renewed certificate is a new directory the maps name);
    # the worker replaces files by rename.
    (ls -l --time-style=+%s.%N "$dir"/*.map "$dir"/domains/* 2>/dev/null
        cat "$dir"/*.map "$dir"/domains/* 2>/dev/null) | md5sum
}

watch_routing_maps() {
    last=$(fingerprint)
    echo "$0: watching $dir/*.map and $dir/domains/"
    while sleep "$interval"; do
        current=$(fingerprint)
        [ "$current" = "$last" ] && continue
        last=$current
        if nginx -t -q 2>/tmp/routing-map-check.log; then
            nginx -s reload && echo "$0: routing map changed, nginx reloaded"
        else
            echo "$0: routing map rejected by nginx -t, keeping the running configuration:" >&2
            cat /tmp/routing-map-check.log >&2
        fi
    done
}

watch_routing_maps &
