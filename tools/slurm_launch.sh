#!/usr/bin/env bash
# A tool of this folder as a Slurm job step, one task per GPU, for
# slurm_train.sh and slurm_test.sh (MMSeg's srun line):
#   bash tools/slurm_launch.sh PARTITION JOB_NAME TOOL [ARGS...]
# GPUS: tasks in all (default 4); GPUS_PER_NODE: tasks per node (default 4);
# CPUS_PER_TASK (default 5); SRUN_ARGS: more srun options; PORT: the
# rendezvous port (MASTER_PORT, default 29500); GRES: the resources asked
# per node (default gpu:GPUS_PER_NODE; `none` on CPU-only nodes, where the
# tasks use gloo); PYTHON: the interpreter (default python).
set -x

PARTITION=$1
JOB_NAME=$2
TOOL=$3
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
GRES=${GRES:-gpu:${GPUS_PER_NODE}}
GRES_ARG="--gres=${GRES}"
if [ "$GRES" = none ]; then
    GRES_ARG=""
fi

MASTER_PORT=${PORT:-${MASTER_PORT:-29500}} \
PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
exec srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    ${GRES_ARG} \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    ${PYTHON:-python} -u "$(dirname "$0")/${TOOL}" "${@:4}" --launcher=slurm
