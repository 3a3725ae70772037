# Job backends. Every *_cmd has the interface of Kaldi's run.pl:
#   ${train_cmd} [--gpu N] [--mem X] [--num_threads N] [--max_jobs_run N] JOB=1:N log/name.JOB.log command ...
# (utils/run_slurm.sh also takes --num_nodes N and --ntasks_per_node N; utils/run_local.sh
# only 1 for both.)
# The backend is chosen with SMILE_CMD_BACKEND (default local), so no edit is needed:
#   SMILE_CMD_BACKEND=slurm ./run.sh ...
# local: this machine; the jobs of a stage run in parallel, one log each (utils/run_local.sh).
# slurm: every job is an sbatch job array (utils/run_slurm.sh), run in this directory with
#   this environment; the recipe folder, data and exp must be on a file system the compute
#   nodes share. Settings, from the environment:
#     SMILE_SLURM_PARTITION  partition to submit to (default: the cluster's default)
#     SMILE_SLURM_OPTS       further sbatch options, split at blanks,
#                            e.g. "--time=48:00:00 --account=myproj --constraint=a100"
#     SMILE_SLURM_POLL       seconds between squeue polls while waiting (default 5)
#   Multi-node training: ./run.sh --ngpu 4 --num_nodes 2 (avsr.sh, stage 11).
cmd_backend=${SMILE_CMD_BACKEND:-local}

case "${cmd_backend}" in
  local)
    export train_cmd="utils/run_local.sh"
    export cuda_cmd="utils/run_local.sh"
    export decode_cmd="utils/run_local.sh"
    ;;
  slurm)
    export train_cmd="utils/run_slurm.sh"
    export cuda_cmd="utils/run_slurm.sh"
    export decode_cmd="utils/run_slurm.sh"
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend ${cmd_backend} (SMILE_CMD_BACKEND: local or slurm)" 1>&2
    exit 1
    ;;
esac
