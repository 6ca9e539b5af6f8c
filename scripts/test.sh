#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian machine, then run it:
#   SIPp (sip-tester) for the end-to-end tests, Kamailio (the behaviour oracle
#   some tests cross-check against), the package with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v sipp >/dev/null 2>&1 || ! command -v kamailio >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq sip-tester kamailio >/dev/null
fi
python3 -m pip install -q -e '.[test]'
exec python3 -m pytest "$@"
