#!/usr/bin/env bash
# Runs an ESPnet training command as one torch.distributed job over all tasks of the
# current Slurm allocation:
#   utils/slurm_dist_launch.sh python -m espnet2_smile.bin.avsr_train <training options>
# inside a job from utils/run_slurm.sh --num_nodes M [--ntasks_per_node K] (avsr.sh
# stage 11 with --num_nodes > 1 or --cpu_procs_per_node > 1).
# srun starts the command once per task; ESPnet's --dist_launcher slurm then takes the
# rank, world size, local rank and node rank from srun's variables (SLURM_PROCID,
# SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID). The master address and port are given
# explicitly: ESPnet's own guess cuts the node list at the first '-' (gpu-node[01-02]
# would give "gpu"). The address is the first host of the allocation, where srun's
# block distribution puts task 0, and this script runs on that host, so the port is
# one that is free here. SMILE_DIST_PORT overrides the port.
# Every task also gets --dist_rank SLURM_PROCID: with several tasks per node (CPU
# training, --multiprocessing_distributed false) ESPnet would otherwise derive the rank
# through get_node_rank(), which refuses SLURM_NTASKS != SLURM_STEP_NUM_NODES. With one
# task per node that value is the node rank ESPnet expects in multiprocessing mode.
set -euo pipefail
if [[ "${1:-}" == --task ]]; then  # one srun task (internal)
  shift
  exec "$@" --dist_rank "${SLURM_PROCID:?not an srun task}"
fi
[[ $# -ge 1 ]] || { echo "usage: $0 <training command> ..." 1>&2; exit 1; }
if [[ -z "${SLURM_JOB_ID:-}" || -z "${SLURM_JOB_NODELIST:-}" ]]; then
  echo "$0: must run inside a Slurm job (utils/run_slurm.sh, cmd_backend=slurm)" 1>&2; exit 1
fi
# the whole list is read (no "| head": under pipefail, scontrol killed by SIGPIPE after
# head has exited would fail the job on a large allocation)
hosts=$(scontrol show hostnames "${SLURM_JOB_NODELIST}")
master_addr="${hosts%%$'\n'*}"
[[ -n "${master_addr}" ]] || { echo "$0: no host in SLURM_JOB_NODELIST=${SLURM_JOB_NODELIST}" 1>&2; exit 1; }
if [[ -n "${SMILE_DIST_PORT:-}" ]]; then
  master_port="${SMILE_DIST_PORT}"
else
  master_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
fi
srun_opts=(--export=ALL --kill-on-bad-exit=1)
# Slurm 22.05 steps do not inherit the job's --cpus-per-task
[[ -n "${SLURM_CPUS_PER_TASK:-}" ]] && srun_opts+=(--cpus-per-task="${SLURM_CPUS_PER_TASK}")
echo "$0: ${SLURM_NTASKS:-?} tasks on ${SLURM_JOB_NODELIST}, master ${master_addr}:${master_port}"
exec srun "${srun_opts[@]}" "$(readlink -f "$0")" --task "$@" --dist_launcher slurm \
  --dist_master_addr "${master_addr}" --dist_master_port "${master_port}"
