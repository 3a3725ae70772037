#!/usr/bin/env bash
# Slurm job runner with the interface of Kaldi's run.pl (and of utils/run_local.sh):
#   utils/run_slurm.sh [options] JOB=1:N log/name.JOB.log command args...
#   utils/run_slurm.sh [options] log/name.log command args...
# Submits one sbatch job array (task ids first..last) and waits for it. In task j every
# occurrence of JOB in the log name and in the command is replaced by j; the command
# runs in the current directory with the current environment (sbatch --export=ALL, so
# the virtual environment path.sh activated), as an argument vector (no shell), and its
# log holds the command line, the host and Slurm job id, start and end time and the
# exit status, as with run_local.sh. Exits non-zero, naming the failed jobs and their
# logs, if any task fails or ends without an exit status (cancelled, node failure,
# time limit; Slurm's own output of such a task is in <logdir>/q/).
# Logs and <logdir>/q/ must be on a file system the compute nodes share.
#
# Options (each maps to sbatch):
#   --gpu N            --gres=gpu:N (per node; 0: none)                      default 0
#   --mem X            --mem=X (per node, e.g. 16G)                          default: cluster's
#   --num_threads N    --cpus-per-task=N                                     default 1
#   --max_jobs_run N   at most N tasks of the array at a time (--array=a-b%N) default: no limit
#   --num_nodes N      --nodes=N                                             default 1
#   --ntasks_per_node N  --ntasks-per-node=N; the command itself starts the tasks
#                      with srun (utils/slurm_dist_launch.sh)                default 1
#   --config FILE      accepted for compatibility with slurm.pl and ignored
# Settings from the environment (cmd.sh documents them):
#   SMILE_SLURM_PARTITION  --partition (empty: the cluster's default partition)
#   SMILE_SLURM_OPTS       further sbatch options, split at blanks, e.g.
#                          "--time=24:00:00 --account=myproj --qos=normal"
#   SMILE_SLURM_POLL       seconds between two squeue polls while waiting (default 5)
set -euo pipefail

gpu=0; mem=""; threads=1; max_jobs=0; num_nodes=1; ntasks_per_node=1
while [[ $# -gt 0 && "$1" == --* ]]; do
  [[ $# -ge 2 ]] || { echo "$0: option $1 needs a value" 1>&2; exit 1; }
  if [[ "$1" != --mem && "$1" != --config && ! "$2" =~ ^[0-9]+$ ]]; then
    echo "$0: $1 must be a non-negative integer, got '$2'" 1>&2; exit 1
  fi
  case "$1" in
    --gpu) gpu="$2" ;;
    --mem) mem="$2" ;;
    --num_threads) threads="$2" ;;
    --max_jobs_run) max_jobs="$2" ;;
    --num_nodes) num_nodes="$2" ;;
    --ntasks_per_node) ntasks_per_node="$2" ;;
    --config) ;;
    *) echo "$0: unknown option $1" 1>&2; exit 1 ;;
  esac
  shift 2
done
if [[ $# -lt 2 ]]; then
  echo "usage: $0 [options] [JOB=1:N] <log> <command> ..." 1>&2; exit 1
fi
var=""; first=1; last=1
if [[ "$1" =~ ^([A-Za-z_]+)=([0-9]+):([0-9]+)$ ]]; then
  var="${BASH_REMATCH[1]}"; first="${BASH_REMATCH[2]}"; last="${BASH_REMATCH[3]}"; shift
fi
log="$1"; shift
[[ "${last}" -ge "${first}" ]] || exit 0
command -v sbatch > /dev/null || { echo "$0: sbatch not found: is this a Slurm submit host?" 1>&2; exit 1; }

log_of() { if [[ -n "${var}" ]]; then echo "${log//${var}/$1}"; else echo "${log}"; fi; }

# The batch script and Slurm's own output of each task go to q/ next to the first log.
name=$(basename "$(log_of "${first}")"); name="${name%.log}"; name="${name%.${first}}"
qdir="$(dirname "$(log_of "${first}")")/q"
mkdir -p "${qdir}"
qdir=$(cd "${qdir}" && pwd)
script="${qdir}/${name}.sh"
array="${first}-${last}"
[[ "${max_jobs}" -gt 0 ]] && array+="%${max_jobs}"
opts=(--parsable --job-name="${name}" --chdir="${PWD}" --export=ALL --array="${array}"
      --output="${qdir}/${name}.%A_%a.out" --nodes="${num_nodes}" --ntasks-per-node="${ntasks_per_node}"
      --cpus-per-task="${threads}")
[[ "${gpu}" -gt 0 ]] && opts+=(--gres="gpu:${gpu}")
[[ -n "${mem}" ]] && opts+=(--mem="${mem}")
[[ -n "${SMILE_SLURM_PARTITION:-}" ]] && opts+=(--partition="${SMILE_SLURM_PARTITION}")
if [[ -n "${SMILE_SLURM_OPTS:-}" ]]; then
  read -r -a extra <<< "${SMILE_SLURM_OPTS}"  # split at blanks, no globbing
  opts+=("${extra[@]}")
fi

{
  echo '#!/usr/bin/env bash'
  echo "# Written by $0 for: $(printf '%q ' "$@")"
  echo "# sbatch $(printf '%q ' "${opts[@]}")"
  echo "cd $(printf '%q' "${PWD}")"
  echo "var=$(printf '%q' "${var}")"
  echo "log=$(printf '%q' "${log}")"
  echo "cmd=($(printf '%q ' "$@"))"
  echo "qdir=$(printf '%q' "${qdir}")"
  echo "name=$(printf '%q' "${name}")"
  cat << 'EOF'
j="${SLURM_ARRAY_TASK_ID:?not running as a Slurm array task}"
l="${log}"; args=()
[[ -n "${var}" ]] && l="${l//${var}/${j}}"
for a in "${cmd[@]}"; do [[ -n "${var}" ]] && a="${a//${var}/${j}}"; args+=("${a}"); done
mkdir -p "$(dirname "${l}")"
{
  echo "# ${args[*]}"
  echo "# Started at $(date) on $(hostname) (slurm job ${SLURM_ARRAY_JOB_ID}_${j}, id ${SLURM_JOB_ID})"
} > "${l}"
rc=0
( "${args[@]}" ) >> "${l}" 2>&1 || rc=$?
{
  echo "# Accounting: time=${SECONDS} threads=${SLURM_CPUS_PER_TASK:-1}"
  echo "# Ended (code ${rc}) at $(date)"
} >> "${l}"
echo "${rc}" > "${qdir}/${name}.${SLURM_ARRAY_JOB_ID}.${j}.rc"
exit "${rc}"
EOF
} > "${script}"
chmod +x "${script}"

if ! out=$(sbatch "${opts[@]}" "${script}" 2>&1); then
  echo "$0: sbatch ${opts[*]} ${script} failed: ${out}" 1>&2; exit 1
fi
jobid="${out%%;*}"  # --parsable prints "id" or "id;cluster"
[[ "${jobid}" =~ ^[0-9]+$ ]] || { echo "$0: unexpected sbatch output: ${out}" 1>&2; exit 1; }

# Interrupted while waiting: cancel the array, so no task outlives this script.
trap 'scancel "${jobid}" 2> /dev/null; echo "$0: interrupted, cancelled slurm job ${jobid}" 1>&2; exit 130' INT TERM HUP

poll="${SMILE_SLURM_POLL:-5}"; delay=1; warned=false
while true; do
  if st=$(squeue --noheader --jobs="${jobid}" --format=%i 2>&1); then
    [[ -z "${st}" ]] && break
  elif [[ "${st}" == *"Invalid job id"* ]]; then
    break  # finished and already purged by the controller
  elif ! "${warned}"; then
    echo "$0: squeue failed (retrying): ${st}" 1>&2; warned=true
  fi
  sleep "${delay}"
  delay=$((delay * 2 > poll ? poll : delay * 2))
done
trap - INT TERM HUP

# Exit status of every task from its status file; on a shared file system it may show up
# a little after the job left the queue (waits up to 10 s in all).
failed=(); missing=(); waited=0
for ((j = first; j <= last; j++)); do
  rcfile="${qdir}/${name}.${jobid}.${j}.rc"
  while [[ ! -s "${rcfile}" && ${waited} -lt 20 ]]; do sleep 0.5; waited=$((waited + 1)); done
  if [[ -s "${rcfile}" ]]; then
    if [[ "$(cat "${rcfile}")" == 0 ]]; then
      out="${qdir}/${name}.${jobid}_${j}.out"
      [[ -s "${out}" ]] || rm -f "${out}"  # keep Slurm's output only when it has something
    else
      failed+=("${j}")
    fi
    rm -f "${rcfile}"
  else
    failed+=("${j}"); missing+=("${j}")
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "$0: ${#failed[@]} of $((last - first + 1)) jobs failed (slurm job ${jobid}): ${failed[*]};" \
    "see $(log_of "${failed[0]}")" 1>&2
  for j in "${missing[@]}"; do
    echo "$0: job ${j} ended without an exit status (cancelled, time limit or node failure?):" \
      "see ${qdir}/${name}.${jobid}_${j}.out" 1>&2
  done
  exit 1
fi
