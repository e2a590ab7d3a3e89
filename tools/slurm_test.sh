#!/usr/bin/env bash
# Test on a Slurm cluster, one task per GPU (MMSeg's slurm_test.sh):
#   [GPUS=16 GPUS_PER_NODE=8] bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [ARGS...]
# (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PORT, GRES: see
# slurm_launch.sh; GRES=none on CPU-only nodes)
exec bash "$(dirname "$0")/slurm_launch.sh" "$1" "$2" test.py "${@:3}"
