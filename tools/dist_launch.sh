#!/usr/bin/env bash
# A tool of this folder in NUM_PROCS processes through torch.distributed.run
# (NCCL on GPUs, gloo on CPUs), for dist_train.sh and dist_test.sh:
#   bash tools/dist_launch.sh NUM_PROCS TOOL [ARGS...]
# NNODES, NODE_RANK, PORT, MASTER_ADDR: as in MMSeg's scripts; PYTHON: the
# interpreter (default python); MAX_RESTARTS: how often torchrun restarts
# the group when a process fails (default 0; train.py then resumes from the
# last checkpoint).
NPROC=$1
TOOL=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
exec ${PYTHON:-python} -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC \
    --master_port=$PORT \
    --max-restarts=${MAX_RESTARTS:-0} \
    "$(dirname "$0")/$TOOL" \
    "${@:3}" \
    --launcher pytorch
