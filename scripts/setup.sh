#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: the real mail servers the
# integration tests start (Exim, Dovecot), the interop peers (openssl, swaks, python3), and
# the browser of the console's test (Chromium and its WebDriver).
# Idempotent: does nothing when everything is present. The system services are never started:
# the tests start their own unprivileged instances on loopback high ports.
set -euo pipefail

need=()
command -v exim4 >/dev/null 2>&1 || need+=(exim4-daemon-light)
command -v dovecot >/dev/null 2>&1 || need+=(dovecot-core)
[ -x /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The JSON Schema check of every `--json` output (crates/cli/tests/cli_json_schema.rs).
python3 -c "import jsonschema" >/dev/null 2>&1 || need+=(python3-jsonschema)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
# The web console's browser test (crates/oct/tests/console_browser.rs): headless Chromium
# driven by WebDriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
    exit 1
fi
echo "setup: installing ${need[*]}" >&2
# Keep the packages' own system services from starting during installation.
restore_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    restore_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if [ $restore_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
# If a service got started anyway, stop it: tests use their own instances.
for svc in exim4 dovecot; do
    (service "$svc" stop >/dev/null 2>&1 || true)
done
