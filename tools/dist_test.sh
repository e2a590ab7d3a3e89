#!/usr/bin/env bash
# Distributed test through torch.distributed.run (NCCL on GPUs, gloo on CPUs):
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [ARGS...]
# (NNODES, NODE_RANK, PORT, MASTER_ADDR: see dist_launch.sh)
exec bash "$(dirname "$0")/dist_launch.sh" "$3" test.py "$1" "$2" "${@:4}"
