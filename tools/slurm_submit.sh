#!/usr/bin/env bash
# Train as a Slurm batch job that survives time limits and preemption:
#   [GPUS=16 GPUS_PER_NODE=8 TIME=2-00:00:00] bash tools/slurm_submit.sh PARTITION JOB_NAME CONFIG [ARGS...]
# Writes SCRIPT_DIR/JOB_NAME.sbatch and submits it (sbatch --parsable
# prints the job id). The job asks Slurm for SIGUSR1 SIGNAL_SECONDS before
# its time limit (--signal=B:USR1@SIGNAL_SECONDS, default 600) and may be
# requeued (--requeue); its log SCRIPT_DIR/JOB_NAME-JOBID.log is appended
# to by every run (--open-mode=append). On the signal (Slurm's, or
# `scancel --signal=USR1 --batch JOBID` at a preemption) the batch shell
# passes it on to the tasks through srun; train.py's PreemptionHook stops
# every rank after the same iteration and writes its checkpoint; then the
# job requeues itself (scontrol requeue) and the requeued job resumes from
# that checkpoint (SLURM_RESTART_COUNT > 0: train.py resumes). The job runs
# in the folder it was submitted from.
# GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PORT, GRES, PYTHON: as in
# slurm_launch.sh; TIME: the time limit (--time, default the partition's);
# SIGNAL_SECONDS: warning before the limit (leave one iteration, a
# validation and a checkpoint save); SBATCH_ARGS: more sbatch options;
# SCRIPT_DIR: where the script and log go (default work_dirs/slurm).
set -euo pipefail

PARTITION=$1
JOB_NAME=$2
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
SBATCH_ARGS=${SBATCH_ARGS:-""}
GRES=${GRES:-gpu:${GPUS_PER_NODE}}
SIGNAL_SECONDS=${SIGNAL_SECONDS:-600}
REPO=$(cd "$(dirname "$0")/.." && pwd)
SCRIPT_DIR=$(mkdir -p "${SCRIPT_DIR:-work_dirs/slurm}" \
    && cd "${SCRIPT_DIR:-work_dirs/slurm}" && pwd)
SCRIPT="${SCRIPT_DIR}/${JOB_NAME}.sbatch"
NODES=$(( (GPUS + GPUS_PER_NODE - 1) / GPUS_PER_NODE ))
# the training command, each argument quoted for the script
TRAIN=$(printf ' %q' "${PYTHON:-python}" -u "${REPO}/tools/train.py" \
    "${@:3}" --launcher=slurm)

{
    echo '#!/usr/bin/env bash'
    echo "#SBATCH --partition=${PARTITION}"
    echo "#SBATCH --job-name=${JOB_NAME}"
    echo "#SBATCH --nodes=${NODES}"
    echo "#SBATCH --ntasks=${GPUS}"
    echo "#SBATCH --ntasks-per-node=${GPUS_PER_NODE}"
    echo "#SBATCH --cpus-per-task=${CPUS_PER_TASK}"
    if [ "$GRES" != none ]; then echo "#SBATCH --gres=${GRES}"; fi
    if [ -n "${TIME:-}" ]; then echo "#SBATCH --time=${TIME}"; fi
    echo '#SBATCH --requeue'
    echo "#SBATCH --signal=B:USR1@${SIGNAL_SECONDS}"
    echo '#SBATCH --open-mode=append'
    echo "#SBATCH --output=${SCRIPT_DIR}/${JOB_NAME}-%j.log"
    cat <<EOF
cd $(printf '%q' "$PWD")
export MASTER_PORT=${PORT:-${MASTER_PORT:-29500}}
export PYTHONPATH=$(printf '%q' "$REPO")\${PYTHONPATH:+:\$PYTHONPATH}
echo "job \$SLURM_JOB_ID run \${SLURM_RESTART_COUNT:-0} starts \$(date)"
signalled=0
# SIGUSR1 to this shell (Slurm's warning, or scancel --signal=USR1 --batch):
# pass it on to the tasks, which checkpoint and stop; requeue when srun ends
trap 'signalled=1; echo "SIGUSR1 at \$(date): checkpoint and requeue"; kill -USR1 "\$srun_pid" 2>/dev/null || true' USR1
srun --kill-on-bad-exit=1 ${SRUN_ARGS}${TRAIN} &
srun_pid=\$!
status=0
while :; do
    wait "\$srun_pid" && status=0 || status=\$?
    kill -0 "\$srun_pid" 2>/dev/null || break
done
# requeued whenever signalled, also when the tasks died of the signal (it
# came before they could catch it): the next run resumes from the last
# checkpoint there is
if [ "\$signalled" = 1 ]; then
    echo "job \$SLURM_JOB_ID: requeued, it resumes from the last checkpoint"
    scontrol requeue "\$SLURM_JOB_ID"
fi
exit "\$status"
EOF
} > "$SCRIPT"

echo "sbatch script: $SCRIPT" >&2
exec sbatch --parsable ${SBATCH_ARGS} "$SCRIPT"
