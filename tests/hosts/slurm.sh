# tests/hosts/slurm.sh - a Slurm cluster over the simulated hosts of
# hosts.sh (bash; sourced after it).  slurm_up N: slurmctld on h0,
# slurmd on h1..hN (2 CPUs each), configuration, state and logs in the
# test's directory, SLURM_CONF exported (a client without it would look
# the controller up in DNS).  Authentication is auth/none and cred/none:
# a cluster that lives for one test inside namespaces the test made, and
# no munged shared with anything else.  slurm_down (run by hosts_down,
# before the namespaces go) stops the daemons by their PID files.
slurm_up() {
  local n=$1 k d=$TMP/slurm
  mkdir -p "$d/state" "$d/log"
  for k in $(seq 1 "$n"); do mkdir -p "$d/spool/h$k"; done
  cat >"$d/slurm.conf" <<CONF
ClusterName=paramdtest
SlurmctldHost=h0($(addr 0))
SlurmUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.%n.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
CONF
  for k in $(seq 1 "$n"); do
    echo "NodeName=h$k NodeAddr=$(addr "$k") CPUs=2 State=UNKNOWN" >>"$d/slurm.conf"
  done
  echo "PartitionName=debug Nodes=h[1-$n] Default=YES MaxTime=INFINITE State=UP" >>"$d/slurm.conf"
  export SLURM_CONF=$d/slurm.conf
  SLURM_N=$n
  hosts_before_down() { slurm_down; }
  on_host 0 slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start: $(cat "$d/log/slurmctld.log")"
  for k in $(seq 1 "$n"); do
    on_host "$k" slurmd -f "$SLURM_CONF" -N "h$k" || fail "slurmd h$k did not start: $(cat "$d/log/slurmd.h$k.log")"
  done
  local t
  for t in $(seq 1 150); do   # the daemons register within a second
    [ "$(on_host 0 sinfo -h -o '%T %D' 2>/dev/null)" = "idle $n" ] && return 0
    sleep 0.1
  done
  on_host 0 sinfo -N >&2
  fail "slurm did not come up: $(tail -5 "$d/log/slurmctld.log")"
}

slurm_down() {
  local d=$TMP/slurm f
  for f in "$d"/slurmd.*.pid "$d"/slurmctld.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
  done
  return 0
}
