#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the UI tests (Debian packages).
# Idempotent and quiet: installs only what is missing.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium chromium-driver >/dev/null
