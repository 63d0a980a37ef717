#!/usr/bin/env python3
"""Makes a template's Odoo generate the asset bundles a customer's first visit needs.

Run by build-templates.sh while a temporary Odoo serves only the database being
built. Odoo compiles a bundle (SCSS, JS, QWeb templates) the first time
/web/assets/<version>/<bundle> is requested and keeps it as an ir.attachment in
that database and its filestore. Requesting here every bundle the login page and,
signed in, the web client reference stores them in the template; every tenant
cloned from it (database and filestore) then finds them already made instead of
compiling 6 MB of assets on its customer's first page.

Usage: warm-assets.py BASE_URL DATABASE LOGIN PASSWORD
Exits non-zero, naming the URL, when a page or a bundle does not answer 200.
Only the Python standard library: it runs in the official Odoo image.
"""

import http.cookiejar
import json
import re
import sys
import time
import urllib.error
import urllib.request

ASSET_LINK = re.compile(r'(?:href|src)="(/web/assets/[^"]+)"')
TIMEOUT = 600  # seconds: compiling the web client's bundles takes a while
STARTUP = 180  # seconds for the temporary server to load the registry and listen


def fetch(opener, url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_server(base):
    deadline = time.monotonic() + STARTUP
    while True:
        try:
            with urllib.request.urlopen(base + "/web/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"warm-assets: Odoo did not answer on {base} within {STARTUP} s")
        time.sleep(0.5)


def warm_page(opener, base, path):
    """Fetches a page and every asset bundle it references; returns their URLs."""
    status, body = fetch(opener, base + path)
    if status != 200:
        sys.exit(f"warm-assets: {path} answered {status}")
    links = sorted(set(ASSET_LINK.findall(body.decode("utf-8", "replace"))))
    if not links:
        sys.exit(f"warm-assets: {path} references no /web/assets bundle")
    for link in links:
        status, content = fetch(opener, base + link)
        if status != 200:
            sys.exit(f"warm-assets: {link} (from {path}) answered {status}")
        print(f"warm-assets: {link} {len(content)} bytes")
    return links


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: warm-assets.py BASE_URL DATABASE LOGIN PASSWORD")
    base, database, login, password = sys.argv[1].rstrip("/"), *sys.argv[2:]
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    wait_for_server(base)
    warm_page(opener, base, "/web/login")

    body = json.dumps({
        "jsonrpc": "2.0", "method": "call", "id": 1,
        "params": {"db": database, "login": login, "password": password},
    }).encode()
    status, answer = fetch(opener, base + "/web/session/authenticate", body,
                           {"Content-Type": "application/json"})
    result = json.loads(answer or b"{}").get("result") if status == 200 else None
    if not result or not result.get("uid"):
        sys.exit(f"warm-assets: could not sign in to {database} (HTTP {status})")
    warm_page(opener, base, "/odoo")


if __name__ == "__main__":
    main()
