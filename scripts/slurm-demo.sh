#!/usr/bin/env bash
# The Slurm profile, proven: a throwaway one-node Slurm cluster on this machine runs the demo through
# workflow/profiles/slurm, and its matches.csv must equal a local run's.
#
#   bash scripts/slurm-demo.sh              # as root, after scripts/install.sh; ~10 min on 2 cores
#   PYTHON=/path/to/python bash scripts/slurm-demo.sh
#   KEEP=1 bash scripts/slurm-demo.sh       # keep the work folder (results, logs, slurm.conf)
#
# 1. Installs what is missing: Debian's slurm-wlm and munge (apt-get), the Snakemake executor plugin
#    (pip, the range of pyproject.toml's `slurm` extra).
# 2. Writes /etc/slurm/slurm.conf (refusing to replace one this script did not write; Slurm's clients in
#    the jobs read it there): no accounting database, MinJobAge 1800 s (the profile polls squeue),
#    proctrack/linuxproc and task/none (no cgroups), no gres/gpu, this machine's CPUs and memory,
#    one default partition. Starts munged (unless one answers already), slurmctld and slurmd.
# 3. Runs the demo set (built by the workflow into the work folder) through the Slurm profile, then
#    locally with --cores 2, and checks: every job but `all` was submitted to Slurm and is COMPLETED
#    in squeue and slurmctld's log; a --gpus job is refused (the profile requests no GPU);
#    matches.csv of both runs are identical.
# 4. Stops the daemons it started, by PID, and removes its slurm.conf, on success and on failure.
#
# Exits 0 only when every check passed. Running it again starts afresh (a run killed before its cleanup
# leaves PID files in /run/d2lv-slurm-demo, whose daemons the next run stops first).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
conf=/etc/slurm/slurm.conf
marker="# Written by d2lv scripts/slurm-demo.sh: a throwaway one-node cluster; the script removes it."
piddir=/run/d2lv-slurm-demo
started=()  # "name:pid" of every daemon this run started
conf_written=0
child=""  # the Snakemake run in progress: a session of its own
SECONDS=0

say() { echo "slurm-demo: $*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

# PIDs of the running processes whose command name is exactly $1.
pids_named() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"
  done
  return 0
}

# Stop process $2 if it is still the daemon $1 (its command name), waiting for it to exit.
stop_pid() {
  local name=$1 pid=$2 i
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 0
    sleep 0.2
  done
  say "$name ($pid) ignored SIGTERM; killing it"
  kill -9 "$pid" 2>/dev/null || true
}

# Run "$2..." in a session of its own, output to file $1, and wait for it (a signal to this script
# interrupts the wait; cleanup stops the whole session).
run_logged() {
  local log=$1 status=0
  shift
  setsid "$@" >"$log" 2>&1 &
  child=$!
  echo "$child" >"$piddir/run.pid"
  wait "$child" || status=$?
  child=""
  rm -f "$piddir/run.pid"
  return "$status"
}

# Stop the session led by process $1, if it is still a `timeout` (the session run_logged starts).
stop_session() {
  local pid=$1 i
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = timeout ] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  return 0
}

cleanup() {
  local status=$? entry i
  trap - EXIT INT TERM
  set +e
  if [ -n "$child" ]; then
    stop_session "$child"
    rm -f "$piddir/run.pid"
  fi
  if [ "${#started[@]}" -gt 0 ] && [[ " ${started[*]} " == *" slurmctld:"* ]]; then
    # Jobs left by a failed run: cancel them while the controller is up, so no job outlives the cluster.
    scancel --full --user root >/dev/null 2>&1
    for i in $(seq 30); do
      [ -z "$(squeue -h -t RUNNING,PENDING,COMPLETING -o %i 2>/dev/null)" ] && break
      sleep 1
    done
  fi
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    entry=${started[i]}
    stop_pid "${entry%%:*}" "${entry#*:}"
    rm -f "$piddir/${entry%%:*}.pid"
  done
  if [ "$conf_written" = 1 ] && head -n 1 "$conf" 2>/dev/null | grep -qxF "$marker"; then
    rm -f "$conf"
  fi
  if [ "$status" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "${work:?}"
  elif [ -n "${work:-}" ]; then
    say "work folder kept: $work"
  fi
  if [ "$status" -eq 0 ]; then
    say "passed in ${SECONDS} s"
  else
    say "failed (exit $status) after ${SECONDS} s"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages, starts munged, slurmctld and slurmd"
"$python" -c "import d2lv, snakemake" 2>/dev/null \
  || die "d2lv is not importable with $python: install it first (bash scripts/install.sh)"

# --- 1. install what is missing ------------------------------------------------------------------
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get to install it"
  say "installing slurm-wlm and munge (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
for tool in sbatch squeue sinfo scontrol scancel slurmctld slurmd munged munge unmunge setpriv; do
  command -v "$tool" >/dev/null || die "$tool not found after installing slurm-wlm and munge"
done
plugin=$(sed -n 's/^slurm = \["\([^"]*\)"\]$/\1/p' pyproject.toml)
[ -n "$plugin" ] || die "no slurm extra (slurm = [\"...\"]) in pyproject.toml"
# A no-op (and offline) when a matching version is installed.
"$python" -m pip install -q --disable-pip-version-check --root-user-action=ignore "$plugin" \
  || die "could not install $plugin"

# --- 2. the cluster -----------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/d2lv-slurm-demo.XXXXXX")
mkdir -p "$piddir" "$work/slurm/state" "$work/slurm/spool"
# What a previous run started and could not stop (it was killed): its Snakemake run, its jobs, its
# daemons. Stop them first.
if [ -f "$piddir/run.pid" ]; then
  say "stopping the Snakemake run $(cat "$piddir/run.pid") left by a previous run"
  stop_session "$(cat "$piddir/run.pid")"
  rm -f "$piddir/run.pid"
fi
if [ -f "$piddir/slurmctld.pid" ] && [ -e "$conf" ] && head -n 1 "$conf" | grep -qxF "$marker"; then
  scancel --full --user root >/dev/null 2>&1 || true
fi
for name in slurmd slurmctld munged; do
  if [ -f "$piddir/$name.pid" ]; then
    say "stopping $name $(cat "$piddir/$name.pid") left by a previous run"
    stop_pid "$name" "$(cat "$piddir/$name.pid")"
    rm -f "$piddir/$name.pid"
  fi
done
for name in slurmctld slurmd; do
  others=$(pids_named "$name" | tr '\n' ' ')
  [ -z "$others" ] || die "a $name is already running (pid $others), not started by this script"
done
if [ -e "$conf" ] && ! head -n 1 "$conf" | grep -qxF "$marker"; then
  die "$conf exists and was not written by this script: this machine has a Slurm of its own"
fi

# munge: the authentication of every Slurm message.
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "using the munged already running"
else
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
  chmod 0400 /etc/munge/munge.key
  setpriv --reuid=munge --regid=munge --init-groups munged --foreground --force \
    --log-file="$work/slurm/munged.log" >>"$work/slurm/munged.out" 2>&1 &
  started+=("munged:$!")
  echo $! >"$piddir/munged.pid"
  for i in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    [ "$i" -lt 50 ] || die "munged did not answer (log: $work/slurm/munged.log)"
    sleep 0.2
  done
fi

node=$(hostname -s)
cpus=$(nproc)
memory=$(free -m | awk '/^Mem:/ {print $2}')
mkdir -p "$(dirname "$conf")"
cat >"$conf" <<EOF
$marker
ClusterName=d2lvdemo
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$work/slurm/state
SlurmdSpoolDir=$work/slurm/spool
SlurmctldPidFile=$work/slurm/slurmctld.pid
SlurmdPidFile=$work/slurm/slurmd.pid
SlurmctldLogFile=$work/slurm/slurmctld.log
SlurmdLogFile=$work/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: 22.05 has no CgroupPlugin=disabled, so no cgroup.conf and plugins that need none.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No accounting database: sacct fails, the profile reads job states from squeue.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Finished jobs stay listed by squeue for 30 min (the plugin needs >= 120 s; the checks below, the run).
MinJobAge=1800
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# The node is what this file says (CPUs and memory as nproc and free -m see them).
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=demo Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
conf_written=1

slurmctld -D -f "$conf" >"$work/slurm/slurmctld.out" 2>&1 &
started+=("slurmctld:$!")
echo $! >"$piddir/slurmctld.pid"
slurmd -D -f "$conf" -N "$node" >"$work/slurm/slurmd.out" 2>&1 &
started+=("slurmd:$!")
echo $! >"$piddir/slurmd.pid"
for i in $(seq 60); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  [ "$i" -lt 60 ] || die "node $node is '${state:-unknown}', not idle, after 60 s (logs: $work/slurm/)"
  sleep 1
done
say "cluster up: $(sinfo --version), node $node, $cpus CPUs, $memory MB, partition demo (logs: $work/slurm/);" \
  "executor plugin $("$python" -m pip show snakemake-executor-plugin-slurm | sed -n 's/^Version: //p')"

# A GPU request is refused here: what the profile's gpu=0 overrides avoid.
if sbatch --gpus=1 --wrap true >/dev/null 2>"$work/slurm/gpu-refused.txt"; then
  die "sbatch --gpus=1 was accepted by a cluster without gres/gpu"
fi

# --- 3. the demo, through Slurm and locally --------------------------------------------------------
demo=(demo_dir="$work/demo" queries="$work/demo/queries" references="$work/demo/references")
say "demo through workflow/profiles/slurm (results: $work/slurm-results)"
# The profile's first status check waits 40 s; 2 s here keeps the demo short (MinJobAge >= 3 x 2).
# timeout: should the executor ever wait forever, fail instead (it may ignore SIGTERM: -k).
if ! run_logged "$work/slurm-run.log" timeout -k 30 1800 "$python" -m snakemake \
  --workflow-profile workflow/profiles/slurm --slurm-init-seconds-before-status-checks 2 \
  --slurm-logdir "$work/slurm-logs" --retries 0 --config results="$work/slurm-results" "${demo[@]}"; then
  tail -n 40 "$work/slurm-run.log" >&2
  die "the Slurm run failed (log: $work/slurm-run.log)"
fi
# Every job but `all` (no command: Snakemake finishes it itself) went through Slurm, and finished there.
jobs=$(awk '/^total/ {print $2; exit}' "$work/slurm-run.log")
[ -n "$jobs" ] || die "no job table in $work/slurm-run.log"
mapfile -t ids < <(sed -n 's/.* has been submitted with SLURM jobid \([0-9]*\) .*/\1/p' "$work/slurm-run.log")
[ "${#ids[@]}" -eq $((jobs - 1)) ] \
  || die "${#ids[@]} jobs submitted to Slurm, expected $((jobs - 1)) (of $jobs, all but 'all')"
for id in "${ids[@]}"; do
  state=$(squeue -h --states=all -j "$id" -o %T 2>/dev/null || true)
  [ "$state" = COMPLETED ] || die "Slurm job $id is '${state:-not listed}', not COMPLETED"
  grep -q "_job_complete: JobId=$id done" "$work/slurm/slurmctld.log" \
    || die "slurmctld's log does not show job $id done"
done
say "${#ids[@]} jobs ran as Slurm jobs ${ids[0]}..${ids[-1]}, all COMPLETED"

say "demo locally, --cores 2 (results: $work/local-results)"
if ! run_logged "$work/local-run.log" timeout -k 30 1800 "$python" -m snakemake --cores 2 \
  --config results="$work/local-results" "${demo[@]}"; then
  tail -n 40 "$work/local-run.log" >&2
  die "the local run failed (log: $work/local-run.log)"
fi

# --- the same matches ---------------------------------------------------------------------------
for run in slurm-results local-results; do
  [ -s "$work/$run/matches.csv" ] || die "no $work/$run/matches.csv"
done
cmp "$work/slurm-results/matches.csv" "$work/local-results/matches.csv" \
  || die "matches.csv differs between the Slurm run and the local run"
say "matches.csv ($(($(wc -l <"$work/local-results/matches.csv") - 1)) matches) equals the local run's"
