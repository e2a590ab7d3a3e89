#!/usr/bin/env bash
# A one-node Slurm cluster on this machine for tests/test_multinode.py:
# Debian's slurm-wlm and munge, one controller and one node daemon on
# localhost (node `localhost`, partition `debug`, 4 CPUs, no GPU).
# Idempotent, as root: installs what is missing, (re)writes the config,
# starts the daemons that are not running, and waits until `sinfo` shows
# the node idle. The daemons stay up for later runs.
#   bash tests/setup/slurm.sh
set -euo pipefail

log() { echo "[slurm] $*"; }

if ! command -v slurmd >/dev/null || ! command -v slurmctld >/dev/null \
        || ! command -v srun >/dev/null || ! command -v munged >/dev/null; then
    log 'installing slurm-wlm and munge'
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd \
    /var/log/slurm /run/munge
chown munge:munge /run/munge
# CPUs=4 whatever the machine has (config_overrides): two tasks of one CPU
# each fit on a 2-core machine with room for a second job step.
cat > /etc/slurm/slurm.conf.new <<'CONF'
ClusterName=sanet
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
# a job that becomes eligible (requeued, its start time passed) starts
# within a second or two, not at the backfill scheduler's next 30 s cycle
SchedulerParameters=bf_interval=1,sched_interval=2
CONF
changed=0
if cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf; then
    rm /etc/slurm/slurm.conf.new
else
    mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
    changed=1
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log 'starting munged'
    runuser -u munge -- /usr/sbin/munged
fi
if ! running /run/slurmctld.pid; then
    log 'starting slurmctld'
    /usr/sbin/slurmctld
elif [ $changed = 1 ]; then
    log 'config changed: scontrol reconfigure'
    scontrol reconfigure
fi
if ! running /run/slurmd.pid; then
    log 'starting slurmd'
    /usr/sbin/slurmd -N localhost
fi

for _ in $(seq 60); do
    state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
    case "$state" in
        idle|mix|alloc) log "node localhost: $state"; sinfo; exit 0 ;;
        drain*|down*) scontrol update nodename=localhost state=resume \
                          2>/dev/null || true ;;
    esac
    sleep 1
done
log "node localhost is not idle (state: '${state:-none}'); see" \
    /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2
exit 1
