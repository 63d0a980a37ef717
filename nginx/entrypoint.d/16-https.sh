#!/bin/sh
# Run by the nginx image's entrypoint before 20-envsubst-on-templates.sh:
# decides at container start whether nginx serves HTTPS on the platform hosts,
# and writes the server-level includes the templates pull in
# (conf.d/https/*.conf, nginx/README.md "HTTPS"). No certificate, no
# includes: nginx serves plain HTTP exactly as without this script.
#
# The certificate, first found wins:
#   1. the operator's: fullchain.pem and privkey.pem in NGINX_TLS_DIR
#      (TLS_CERT_DIR of .env, mounted read-only);
#   2. with TLS_SELF_SIGNED=true and PUBLIC_SCHEME=https, a self-signed one
#      for BASE_DOMAIN and *.BASE_DOMAIN, kept in NGINX_TLS_SELF_SIGNED_DIR
#      (a volume) and made anew when BASE_DOMAIN changes or it nears expiry;
#   3. none.
# With a certificate and PUBLIC_SCHEME=https, plain HTTP on the platform hosts
# answers 308 to https://<host>[:PUBLIC_PORT]<uri>.
set -eu

me=$0
out="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}/https"
tls_dir="${NGINX_TLS_DIR:-/etc/nginx/tls}"
self_signed_dir="${NGINX_TLS_SELF_SIGNED_DIR:-/var/lib/odoo-saas/nginx-tls}"
listen_port="${NGINX_HTTPS_LISTEN_PORT:?NGINX_HTTPS_LISTEN_PORT must be set}"
domain="${BASE_DOMAIN:?BASE_DOMAIN must be set}"
scheme="${PUBLIC_SCHEME:?PUBLIC_SCHEME must be set}"
self_signed="${TLS_SELF_SIGNED:-false}"

fail() {
    echo "$me: $*" >&2
    exit 1
}

# A certificate that expires within this many seconds is made anew (30 days).
renew_before=2592000

make_self_signed() {
    command -v openssl >/dev/null 2>&1 ||
        fail "TLS_SELF_SIGNED=true needs the openssl command (the nginx image's Debian variant has it)"
    mkdir -p "$self_signed_dir"
    if [ -s "$self_signed_dir/fullchain.pem" ] && [ -s "$self_signed_dir/privkey.pem" ] &&
        [ "$(cat "$self_signed_dir/domain" 2>/dev/null)" = "$domain" ] &&
        openssl x509 -checkend "$renew_before" -noout -in "$self_signed_dir/fullchain.pem" >/dev/null 2>&1; then
        return 0
    fi
    echo "$me: making a self-signed certificate for $domain and *.$domain in $self_signed_dir"
    # Written beside the old ones and renamed over them, key first.
    (
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -days 397 -subj "/CN=$domain" \
            -addext "subjectAltName=DNS:$domain,DNS:*.$domain" \
            -addext "basicConstraints=critical,CA:FALSE" \
            -addext "keyUsage=critical,digitalSignature" \
            -addext "extendedKeyUsage=serverAuth" \
            -keyout "$self_signed_dir/privkey.pem.tmp" \
            -out "$self_signed_dir/fullchain.pem.tmp" 2>/dev/null
    ) || fail "openssl could not make a self-signed certificate in $self_signed_dir"
    # The certificate is public: a developer may copy it out to trust it.
    chmod 644 "$self_signed_dir/fullchain.pem.tmp"
    mv "$self_signed_dir/privkey.pem.tmp" "$self_signed_dir/privkey.pem"
    mv "$self_signed_dir/fullchain.pem.tmp" "$self_signed_dir/fullchain.pem"
    printf '%s\n' "$domain" >"$self_signed_dir/domain"
}

# Where the certificate is, or nothing.
certificate_dir() {
    if [ -e "$tls_dir/fullchain.pem" ] || [ -e "$tls_dir/privkey.pem" ]; then
        for file in fullchain.pem privkey.pem; do
            [ -r "$tls_dir/$file" ] ||
                fail "$tls_dir/$file is missing or unreadable: TLS_CERT_DIR needs fullchain.pem and privkey.pem (PEM)"
        done
        echo "$tls_dir"
    elif [ "$self_signed" = true ] && [ "$scheme" = https ]; then
        make_self_signed >&2
        echo "$self_signed_dir"
    fi
}

case "$self_signed" in
    true | false) ;;
    *) fail "TLS_SELF_SIGNED must be true or false, not '$self_signed'" ;;
esac
case "$scheme" in
    http | https) ;;
    *) fail "PUBLIC_SCHEME must be http or https, not '$scheme'" ;;
esac
case "${PUBLIC_PORT:-}" in
    "" | 443) port_suffix="" ;;
    *[!0-9]*) fail "PUBLIC_PORT must be a port number or empty, not '$PUBLIC_PORT'" ;;
    *) port_suffix=":$PUBLIC_PORT" ;;
esac

# Decided before anything is removed: a failure leaves the last includes.
dir=$(certificate_dir)
rm -rf "$out"
if [ -z "$dir" ]; then
    echo "$me: no certificate in $tls_dir: HTTP only"
    exit 0
fi
mkdir -p "$out"

cat >"$out/default-server.conf" <<EOF
# Written by $me at container start.
# HTTPS for names that are not ours: the handshake is refused.
listen $listen_port ssl default_server;
ssl_reject_handshake on;
EOF

{
    cat <<EOF
# Written by $me at container start.
# HTTPS with the certificate in $dir.
listen $listen_port ssl;
ssl_certificate $dir/fullchain.pem;
ssl_certificate_key $dir/privkey.pem;
# One HSTS header, nginx's, and only over HTTPS (admin and portal send their
# own when PUBLIC_SCHEME=https).
proxy_hide_header Strict-Transport-Security;
add_header Strict-Transport-Security \$strict_transport_security always;
EOF
    if [ "$scheme" = https ]; then
        cat <<EOF
# PUBLIC_SCHEME=https: plain HTTP only redirects, keeping host, path and
# query (ACME's challenge requests excepted: \$redirect_to_https).
if (\$redirect_to_https) {
    return 308 https://\$host$port_suffix\$request_uri;
}
EOF
    fi
} >"$out/platform-host.conf"

# Customers' own domains: the same listener, with the certificate and key
# the worker's maps name for the SNI name (loaded per handshake).
cat >"$out/custom-domain-tls.conf" <<EOF
# Written by $me at container start.
listen $listen_port ssl;
ssl_certificate \$custom_domain_certificate;
ssl_certificate_key \$custom_domain_certificate_key;
proxy_hide_header Strict-Transport-Security;
add_header Strict-Transport-Security \$strict_transport_security always;
EOF
if [ "$scheme" = https ]; then
    cat >"$out/redirect-custom-domain.conf" <<EOF
# Written by $me at container start: a customer's domain has its own
# certificate, so plain HTTP redirects (ACME's challenges are served first).
if (\$scheme = http) {
    return 308 https://\$host$port_suffix\$request_uri;
}
EOF
fi

if [ "$scheme" = https ]; then
    echo "$me: HTTPS on port $listen_port with $dir; plain HTTP redirects to https://<host>$port_suffix"
else
    echo "$me: HTTPS on port $listen_port with $dir; plain HTTP serves too (PUBLIC_SCHEME=http)"
fi
