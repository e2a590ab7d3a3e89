#!/usr/bin/env bash
# Set up (idempotent, see tools/setup_env.sh) and run the test suite: CPU
# only. Fails when a test fails or when no test ran. SANET_TEST_WORKERS=2
# runs two pytest-xdist workers, each taking whole files (11.5 minutes on
# two cores; docs/setup.md); one process is the default.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh || exit 1
workers=${SANET_TEST_WORKERS:-0}
parallel=()
[ "$workers" != 0 ] && parallel=(-n "$workers" --dist loadfile)
python -m pytest tests -q -p no:cacheprovider "${parallel[@]}" "$@"
rc=$?
if [ $rc = 5 ]; then
    echo "no tests ran" >&2
    exit 1
fi
exit $rc
