#!/usr/bin/env bash
# Set up (idempotent, see tools/setup_env.sh) and run the test suite: CPU
# only. Fails when a test fails or when no test ran. Two pytest-xdist
# workers by default, each taking whole files, the longest first
# (tests/conftest.py), torch on one thread in each (OMP_NUM_THREADS=1, also
# for the tools the tests start); SANET_TEST_WORKERS=0: one process, N: N
# workers (docs/setup.md has the times).
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh || exit 1
workers=${SANET_TEST_WORKERS:-2}
parallel=()
if [ "$workers" != 0 ]; then
    parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
python -m pytest tests -q -p no:cacheprovider "${parallel[@]}" "$@"
rc=$?
if [ $rc = 5 ]; then
    echo "no tests ran" >&2
    exit 1
fi
exit $rc
