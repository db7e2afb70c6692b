#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine for `assay run --executor
# slurm` and its e2e tests (tests/e2e/slurm.rs, docs/cluster.md): Debian's
# slurm-wlm and munge, installed with apt-get when missing, run as root
# without systemd. Writes a minimal slurm.conf (this host as the only node,
# its CPUs and memory, one partition `debug`, select/cons_tres, no cgroups),
# starts munged, slurmctld and slurmd, and waits until `sinfo` shows the
# node idle. Idempotent: with everything running it changes nothing.
#
# Time on the 2-core development machine: 14 s to download and install
# the packages (slurm-wlm 22.05 and munge, with the apt lists already
# fetched; an `apt-get update` first adds its time), then 0.2 s until the
# node is idle (1.3 s when a changed configuration restarts the daemons);
# a second call returns in 0.03 s. The first job then starts at once (a
# 20-task `true` array: 17 s, about 1.7 s per task on each of the 2 CPUs).
#
# Needs root. Prints one line when the cluster is ready.
set -euo pipefail

conf_dir=/etc/slurm
conf="$conf_dir/slurm.conf"
state=/var/spool/slurmctld
spool=/var/spool/slurmd
log=/var/log/slurm
host="$(hostname -s)"

ready() {
    sinfo -h -N -o '%T' 2>/dev/null | grep -qxE 'idle|mixed|allocated'
}

if [ "$(id -u)" != 0 ]; then
    echo "start-slurm: needs root (it installs packages and starts daemons)" >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
fi

# munge: a key, then the daemon.
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force 2>/dev/null \
        || /usr/sbin/munged --force
    for _ in $(seq 1 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

# slurm.conf for this machine: what slurmd sees, less 1 GiB of memory for
# the system.
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)"
mem_mb=$((mem_mb > 2048 ? mem_mb - 1024 : mem_mb))
mkdir -p "$conf_dir" "$state" "$spool" "$log"
cat >"$conf.new" <<EOF
# Written by assay's scripts/start-slurm.sh: a one-node test cluster.
ClusterName=assay
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state
SlurmdSpoolDir=$spool
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job without --mem gets 512 MiB per CPU, so jobs share the node.
DefMemPerCPU=512
ReturnToService=2
MpiDefault=none
# Quick turnaround for a test cluster: the time limit is enforced within
# seconds and a finished job's record is kept for 10 minutes.
InactiveLimit=0
KillWait=5
OverTimeLimit=0
MinJobAge=600
# Arrays of at most 5 tasks (ids 0-4), so that the tests' 6-cell runs are
# split into two arrays as a sweep over a real cluster's limit (1001 by
# default) is.
MaxArraySize=5
SchedulerParameters=sched_interval=2
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
if cmp -s "$conf.new" "$conf" && ready; then
    rm -f "$conf.new"
    echo "start-slurm: already running ($(sinfo -h -N -o '%N %T %c CPUs' | head -n 1))"
    exit 0
fi
if ! cmp -s "$conf.new" "$conf"; then
    mv "$conf.new" "$conf"
    changed=1
else
    rm -f "$conf.new"
    changed=0
fi

running() { pgrep -x "$1" >/dev/null; }
if [ "$changed" = 1 ] && { running slurmctld || running slurmd; }; then
    # A new node or partition definition needs the daemons restarted.
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
        running slurmctld || running slurmd || break
        sleep 0.1
    done
fi
running slurmctld || /usr/sbin/slurmctld
running slurmd || /usr/sbin/slurmd

for _ in $(seq 1 120); do
    if ready; then
        echo "start-slurm: ready ($(sinfo -h -N -o '%N %T %c CPUs' | head -n 1))"
        exit 0
    fi
    # A node that came back after a restart may be down: resume it.
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE 'down|drain'; then
        scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 1
done
echo "start-slurm: the node did not become idle in 120 s; see $log/slurmctld.log and $log/slurmd.log" >&2
sinfo >&2 || true
exit 1
