#!/usr/bin/env bash
# Distributed train through torch.distributed.run (NCCL on GPUs, gloo on CPUs):
#   bash tools/dist_train.sh CONFIG NUM_PROCS [ARGS...]
# (NNODES, NODE_RANK, PORT, MASTER_ADDR, MAX_RESTARTS: see dist_launch.sh;
# MAX_RESTARTS=N restarts the group from the last checkpoint when a process
# dies)
exec bash "$(dirname "$0")/dist_launch.sh" "$2" train.py "$1" "${@:3}"
