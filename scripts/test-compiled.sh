#!/usr/bin/env bash
# Build the mypyc-compiled variant (setup.py, SIPROUTER_MYPYC=1) in a scratch
# copy of the tree and run the unit tests and the conformance corpus against it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip install -q "mypy==2.4.1"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work"
cd "$work"
SIPROUTER_MYPYC=1 python3 setup.py -q build_ext --inplace >/dev/null
n=$(find src -name '*.so' | wc -l)
echo "compiled $n extension modules"
[ "$n" -gt 10 ] || { echo "mypyc build produced too few modules"; exit 1; }
export PYTHONPATH="$work/src"
export SIPROUTER_SHARED="${SIPROUTER_SHARED:-$root/../shared}"
python3 -c 'import siprouter.sip.message as m, sys; sys.exit(0 if m.__file__.endswith(".so") else 1)'
python3 -c 'import siprouter.sip._speedups'    # the C fast paths (tests/sip/test_speedups.py)
exec python3 -m pytest -p no:cacheprovider "$@" tests
