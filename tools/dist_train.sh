#!/usr/bin/env bash
# Distributed train through torch.distributed.run (NCCL on GPUs, gloo on CPUs):
#   bash tools/dist_train.sh CONFIG NUM_PROCS [ARGS...]
# (NNODES, NODE_RANK, PORT, MASTER_ADDR: see dist_launch.sh)
exec bash "$(dirname "$0")/dist_launch.sh" "$2" train.py "$1" "${@:3}"
