#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian machine, then run it.
#   SIPp (sip-tester) for the end-to-end tests, the package with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v sipp >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq sip-tester >/dev/null
fi
python3 -m pip install -q -e '.[test]'
exec python3 -m pytest "$@"
