#!/usr/bin/env bash
# Set up (idempotent, see tools/setup_env.sh) and run the test suite: CPU
# only, no network. Fails when a test fails or when no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh || exit 1
python -m pytest tests -q -p no:cacheprovider "$@"
rc=$?
if [ $rc = 5 ]; then
    echo "no tests ran" >&2
    exit 1
fi
exit $rc
