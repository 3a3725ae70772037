# Job backends. Every *_cmd has the interface of Kaldi's run.pl:
#   ${train_cmd} [--gpu N] JOB=1:N log/name.JOB.log command ...
# local: this machine (utils/run_local.sh). For a cluster, set cmd_backend=slurm and put
# ESPnet's/Kaldi's slurm.pl (same interface) and conf/slurm.conf in place.
cmd_backend=local

case "${cmd_backend}" in
  local)
    export train_cmd="utils/run_local.sh"
    export cuda_cmd="utils/run_local.sh"
    export decode_cmd="utils/run_local.sh"
    ;;
  slurm)
    export train_cmd="slurm.pl --config conf/slurm.conf"
    export cuda_cmd="slurm.pl --config conf/slurm.conf"
    export decode_cmd="slurm.pl --config conf/slurm.conf"
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend ${cmd_backend} (local or slurm)" 1>&2
    exit 1
    ;;
esac
