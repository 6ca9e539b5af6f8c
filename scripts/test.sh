#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian machine, then run it:
#   SIPp (sip-tester) for the end-to-end tests, Kamailio (the behaviour oracle
#   some tests cross-check against), PostgreSQL (the dispatcher DB tests start a
#   throwaway server of their own, tests/pg.py), the package with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v kamailio >/dev/null 2>&1 || missing+=(kamailio)
[ -n "${SIPROUTER_PG_BINDIR:-}" ] || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
    || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -m pip install -q -e '.[test]'
exec python3 -m pytest "$@"
