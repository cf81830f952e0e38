#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine (Debian 12, slurm 22.05, no systemd), for the
# test suite and for trying `snakemake --profile slurm`. Installs slurm-wlm and munge if missing,
# writes /etc/slurm/{slurm,gres}.conf with two fake GPUs, starts munged, slurmctld and slurmd, and
# waits until the node takes jobs. Needs root. Stop it with cluster/slurm-down.sh.
set -euo pipefail

GPUS=${MEDDAP_FAKE_GPUS:-2}
PARTITION=${MEDDAP_SLURM_PARTITION:-debug}

if [[ $(id -u) -ne 0 ]]; then
    echo "slurm-up.sh: run as root (it installs packages and starts daemons)" >&2
    exit 1
fi
UP='^(idle|mixed|allocated|completing)$'
if sinfo -h -o %T 2>/dev/null | grep -qE "$UP"; then
    echo "slurm-up.sh: a cluster is already up"
    exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge
fi

node=$(hostname -s)
# Twice the cores: short jobs spend most of their time starting Python, so two share a core well.
cpus=$((2 * $(nproc)))
memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))

# munge: the key comes with the package; the daemon runs as its own user.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
[[ -s /etc/munge/munge.key ]] || /usr/sbin/mungekey --create --force
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

# Fake GPUs: 22.05 ignores count-only gres, so each one is a character device (NVIDIA's major 195).
for ((i = 0; i < GPUS; i++)); do
    [[ -c /dev/meddap-gpu$i ]] || mknod /dev/meddap-gpu$i c 195 $i
done

install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
# Written by meddap cluster/slurm-up.sh: one node, ${GPUS} fake GPUs, no accounting database.
ClusterName=meddap
SlurmctldHost=${node}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=2000
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=${node} CPUs=${cpus} RealMemory=${memory} Gres=gpu:${GPUS} State=UNKNOWN
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
cat > /etc/slurm/gres.conf <<CONF
NodeName=${node} Name=gpu File=/dev/meddap-gpu[0-$((GPUS - 1))]
CONF

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    if [[ $state =~ $UP ]]; then
        echo "slurm-up.sh: node ${node} ${state} (${cpus} CPUs, ${memory} MB, ${GPUS} fake GPUs, partition ${PARTITION})"
        exit 0
    fi
    [[ $state == down* || $state == drain* ]] && scontrol update nodename="$node" state=resume || true
    sleep 1
done
echo "slurm-up.sh: node ${node} did not become idle; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1
