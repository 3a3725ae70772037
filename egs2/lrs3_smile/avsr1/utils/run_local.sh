#!/usr/bin/env bash
# Local job runner with the interface of Kaldi's run.pl:
#   utils/run_local.sh [--gpu N] [--mem X] [--max_jobs_run N] JOB=1:N log/name.JOB.log command args...
#   utils/run_local.sh [--gpu N] log/name.log command args...
# Every occurrence of JOB in the log name and the command is replaced by the job
# index; the jobs run in parallel (at most --max_jobs_run at a time, default all), each
# with its own log (command line, start and end time, exit status at the end).
# Exits non-zero, naming the failed jobs and their logs, if any job fails.
# --gpu, --mem and --num_threads are accepted for compatibility with cluster backends
# and ignored; --num_nodes and --ntasks_per_node (utils/run_slurm.sh) must be 1 here.
set -euo pipefail
max_jobs=0
while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --gpu|--mem|--num_threads|--config) shift 2 ;;
    --max_jobs_run) max_jobs="$2"; shift 2 ;;
    --num_nodes|--ntasks_per_node)
      if [[ "$2" != 1 ]]; then
        echo "$0: $1 $2 needs a cluster backend (SMILE_CMD_BACKEND=slurm, cmd.sh)" 1>&2; exit 1
      fi
      shift 2 ;;
    *) echo "$0: unknown option $1" 1>&2; exit 1 ;;
  esac
done
if [[ $# -lt 2 ]]; then
  echo "usage: $0 [JOB=1:N] <log> <command> ..." 1>&2; exit 1
fi
var=""; first=1; last=1
if [[ "$1" =~ ^([A-Za-z_]+)=([0-9]+):([0-9]+)$ ]]; then
  var="${BASH_REMATCH[1]}"; first="${BASH_REMATCH[2]}"; last="${BASH_REMATCH[3]}"; shift
fi
log="$1"; shift
cmd=("$@")

run_one() {
  local j="$1" l="$log" args=() a
  [[ -n "$var" ]] && l="${l//$var/$j}"
  for a in "${cmd[@]}"; do [[ -n "$var" ]] && a="${a//$var/$j}"; args+=("$a"); done
  mkdir -p "$(dirname "$l")"
  {
    echo "# ${args[*]}"
    echo "# Started at $(date)"
  } > "$l"
  local rc=0
  ( "${args[@]}" ) >> "$l" 2>&1 || rc=$?
  {
    echo "# Accounting: time=${SECONDS} threads=1"
    echo "# Ended (code $rc) at $(date)"
  } >> "$l"
  return "$rc"
}

pids=(); jobs_idx=()
for ((j = first; j <= last; j++)); do
  if [[ "$max_jobs" -gt 0 ]]; then
    while [[ $(jobs -rp | wc -l) -ge "$max_jobs" ]]; do wait -n || true; done
  fi
  run_one "$j" & pids+=($!); jobs_idx+=("$j")
done
failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${jobs_idx[$i]}")
done
if [[ ${#failed[@]} -gt 0 ]]; then
  l="$log"
  echo "$0: ${#failed[@]} of $((last - first + 1)) jobs failed: ${failed[*]}; see ${l//${var:-JOB}/${failed[0]}}" 1>&2
  exit 1
fi
