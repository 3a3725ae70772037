#!/usr/bin/env bash
# The ablation study: every variant x seed is trained (stage 11), then decoded (stages
# 12-13) on the clean test sets and their noisy copies, audio-visually, and on the clean
# sets with --modality audio and video; RESULTS_ABLATION.md and wer_vs_snr.png are
# written from the sclite reports (python -m espnet2_smile.bin.ablation_report).
#
#   local/run_ablations.sh                                 # all variants, seed 1
#   local/run_ablations.sh --seeds "1 2 3" --local_data_opts "--train_subset full" --noise_types "babble speech white"
#   local/run_ablations.sh --variants "smile baseline" --asr_args "--max_epoch 20" --nbpe 1000
#
# Options not listed below go to run.sh (e.g. --nbpe, --ngpu, --inference_args). Stages
# 1-10 run once (skipped when their statistics exist; missing noisy sets are made and
# dumped). The script can be stopped at any time and rerun with the same options: a
# finished training run (done marker) is skipped, an interrupted one resumes from its
# checkpoint (ESPnet's --resume), and a decoding is skipped when its sclite report is
# newer than the model and the test data. Experiments: <expdir>/asr_<variant>_seed<N>,
# decoding directories <inference_tag>_<av|audio|video>/<test set>; the wall time of
# each completed step is appended to <expdir>/ablation_times.tsv.
set -euo pipefail
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0
command="$0"; [ $# -eq 0 ] || command+=$(printf " %q" "$@")  # quoted in the report

variants="smile smile_nofusion smile_nosiamese smile_mlm baseline audio_only" # Variants: <config_dir>/train_<variant>.yaml.
seeds="1"                 # Training seeds (the trainer's --seed); one experiment per variant and seed.
test_sets="test"          # Clean test sets.
modalities="av audio video" # Decoding modalities; audio and video decode the clean sets only, and are skipped for models without video.
noise_types="babble"      # Noise types of the noisy test sets, e.g. "babble speech white" (empty: clean sets only).
snrs="-5 0 5 10"          # SNRs of the noisy test sets in dB.
noise_dir=""              # Test noise folder (default: <corpus>/noise/test of the built-in corpus; LRS3: e.g. MUSAN).
noise_seed=1              # Seed of the noise draws of the noisy test sets.
config_dir=conf/tuning    # Folder of the variant configs.
asr_args=""               # Training arguments of every run; "--seed N" is appended.
local_data_opts=""        # Options of local/data.sh (stage 1).
inference_tag=decode      # Decoding directories: <inference_tag>_<modality>. Use a new tag after changing decoding options.
reference=smile           # The variant each ablation is compared with.
plot_noise=babble         # Noise type of wer_vs_snr.png.
report=RESULTS_ABLATION.md # The report.
plot=""                   # The WER-against-SNR plot (default: wer_vs_snr.png next to the report).
expdir=exp                # Experiment directory (also passed to run.sh).
dumpdir=dump              # Dump directory (also passed to run.sh).
train_set=train           # Training set (also passed to run.sh).
valid_set=dev             # Validation set (also passed to run.sh).

own_options="variants seeds test_sets modalities noise_types snrs noise_dir noise_seed config_dir asr_args
  local_data_opts inference_tag reference plot_noise report plot expdir dumpdir train_set valid_set"
set_by_this_script="asr_tag asr_config inference_modality stage stop_stage skip_data_prep skip_train skip_eval"
help_message="Usage: $0 [--variants '...'] [--seeds '1 2 3'] [--test_sets test] [--modalities 'av audio video']
       [--noise_types 'babble speech white'] [--snrs '-5 0 5 10'] [--asr_args '...'] [run.sh options]
Options and defaults: see the comments at the top of $0."

# Options of this script set its variables; any other --name value goes to run.sh.
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) echo -e "${help_message}"; exit 0 ;;
    --*=*) _name="${1%%=*}"; _name="${_name#--}"; _value="${1#*=}"; shift ;;
    --*)
      _name="${1#--}"
      [ $# -ge 2 ] || { log "Error: option $1 needs a value"; exit 2; }
      _value="$2"; shift 2 ;;
    *) log "Error: unexpected argument '$1' (options are --name value)"; exit 2 ;;
  esac
  _name="${_name//-/_}"
  if [[ " ${own_options//$'\n'/ } " == *" ${_name} "* ]]; then
    printf -v "${_name}" '%s' "${_value}"
  elif [[ " ${set_by_this_script} " == *" ${_name} "* ]]; then
    log "Error: --${_name} is set by $0 for each run; it cannot be given"; exit 2
  else
    extra+=("--${_name}" "${_value}")
  fi
done

. ./path.sh

# lists may be space or comma separated
variants=${variants//,/ }; seeds=${seeds//,/ }; test_sets=${test_sets//,/ }
modalities=${modalities//,/ }; noise_types=${noise_types//,/ }; snrs=${snrs//,/ }
[ -n "${variants}" ] || { log "Error: --variants is empty"; exit 2; }
[ -n "${seeds}" ] || { log "Error: --seeds is empty"; exit 2; }
[ -n "${test_sets}" ] || { log "Error: --test_sets is empty"; exit 2; }
for v in ${variants}; do
  [ -f "${config_dir}/train_${v}.yaml" ] || { log "Error: variant ${v}: ${config_dir}/train_${v}.yaml does not exist"; exit 2; }
done
for s in ${seeds}; do
  [[ "${s}" =~ ^[0-9]+$ ]] || { log "Error: seed '${s}' is not a non-negative integer"; exit 2; }
done
for m in ${modalities}; do
  case "${m}" in av|audio|video) ;; *) log "Error: modality '${m}' must be av, audio or video"; exit 2 ;; esac
done

# what run.sh derives from options that pass through it (defaults as in run.sh / avsr.sh)
_opt() {  # value of --$1 among the pass-through options, else $2
  local i value=$2
  for ((i = 0; i < ${#extra[@]}; i += 2)); do [ "${extra[i]}" = "--$1" ] && value=${extra[i+1]}; done
  echo "${value}"
}
token_type=$(_opt token_type bpe)
if [ "${token_type}" = bpe ]; then tok_suffix="bpe$(_opt nbpe 100)"; else tok_suffix=${token_type}; fi
asr_stats_dir=$(_opt asr_stats_dir "${expdir}/asr_stats_raw_${tok_suffix}")
inference_asr_model=$(_opt inference_asr_model valid.acc.ave.pth)
common=(--expdir "${expdir}" --dumpdir "${dumpdir}" --train_set "${train_set}" --valid_set "${valid_set}")
# the pass-through options that shape training (decoding and scoring options excluded)
train_extra=""
for ((i = 0; i < ${#extra[@]}; i += 2)); do
  case "${extra[i]#--}" in
    inference*|gpu_inference|score_opts|use_lm|lm_*|nj) ;;
    *) train_extra+="${extra[i]} ${extra[i+1]} " ;;
  esac
done
times="${expdir}/ablation_times.tsv"
mkdir -p "${expdir}"
record() {  # kind variant seed what seconds
  printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "${times}"
}

noisy_sets=""
if [ -n "${noise_types}" ]; then
  noisy_sets=$(local/make_noisy_sets.sh --names true --sets "${test_sets}" --noise_types "${noise_types}" --snrs "${snrs}")
  noisy_sets=$(echo ${noisy_sets})  # one line
fi
all_sets="${test_sets}${noisy_sets:+ ${noisy_sets}}"
first_config="${config_dir}/train_${variants%% *}.yaml"
make_noisy() {
  [ -n "${noise_types}" ] || return 0
  local opts=(--sets "${test_sets}" --noise_types "${noise_types}" --snrs "${snrs}" --seed "${noise_seed}")
  [ -n "${noise_dir}" ] && opts+=(--noise_dir "${noise_dir}")
  local/make_noisy_sets.sh "${opts[@]}"
}

# ------------------------------------------------------------------ stages 1-10, once
log "Variants: ${variants}; seeds: ${seeds}; test sets: ${all_sets}; modalities: ${modalities}"
if [ ! -f "${asr_stats_dir}/train/feats_stats.npz" ]; then
  log "Stages 1-10 (no ${asr_stats_dir}/train/feats_stats.npz yet)"
  _t=${SECONDS}
  ./run.sh --stage 1 --stop_stage 1 --asr_config "${first_config}" --test_sets "${test_sets}" \
    --local_data_opts "${local_data_opts}" "${common[@]}" "${extra[@]}"
  make_noisy
  ./run.sh --stage 2 --stop_stage 10 --asr_config "${first_config}" --test_sets "${all_sets}" \
    --local_data_opts "${local_data_opts}" "${common[@]}" "${extra[@]}"
  record prep - - "stages 1-10" $((SECONDS - _t))
else
  log "Stages 1-10: done before (${asr_stats_dir}); reused"
  for dset in ${test_sets}; do
    [ -f "data/${dset}/wav.scp" ] || { log "Error: data/${dset} does not exist (stage 1 made other sets?)"; exit 1; }
  done
  _t=${SECONDS}
  make_noisy
  stale=""
  for dset in ${all_sets}; do
    _dump="${dumpdir}/raw/${dset}/wav.scp"
    if [ ! -f "${_dump}" ] || [ "data/${dset}/wav.scp" -nt "${_dump}" ]; then stale+=" ${dset}"; fi
  done
  if [ -n "${stale}" ]; then
    log "Stage 3 for the test sets not dumped yet:${stale}"
    ./run.sh --stage 3 --stop_stage 3 --asr_config "${first_config}" --test_sets "${all_sets}" "${common[@]}" "${extra[@]}"
    record prep - - "noisy sets and stage 3" $((SECONDS - _t))
  fi
fi

# ------------------------------------------------------------------ training
for variant in ${variants}; do
  config="${config_dir}/train_${variant}.yaml"
  for seed in ${seeds}; do
    tag="${variant}_seed${seed}"
    exp="${expdir}/asr_${tag}"
    args="${asr_args:+${asr_args} }--seed ${seed}"
    marker="${exp}/.ablation_train.done"
    want=$(printf 'config train_%s.yaml md5 %s\nasr_args %s\nrun.sh options %s\n' "${variant}" "$(md5sum < "${config}" | cut -d' ' -f1)" \
      "${args}" "${train_extra% }")
    if [ -f "${marker}" ] && [ -f "${exp}/${inference_asr_model}" ]; then
      if [ "$(cat "${marker}")" = "${want}" ]; then
        log "Training ${tag}: finished before; skipped"; continue
      fi
      log "Error: ${exp} was trained with other options than now:"
      diff <(cat "${marker}") <(echo "${want}") || true
      log "Remove ${marker} to resume it with the new options (ESPnet --resume), or ${exp} to train anew."
      exit 1
    fi
    log "Training ${tag}: ${config}, --asr_args '${args}'"
    _t=${SECONDS}
    ./run.sh --stage 11 --stop_stage 11 --asr_config "${config}" --asr_tag "${tag}" --asr_args "${args}" \
      --test_sets "${test_sets}" "${common[@]}" "${extra[@]}"
    [ -f "${exp}/${inference_asr_model}" ] || { log "Error: training ${tag} left no ${exp}/${inference_asr_model}"; exit 1; }
    echo "${want}" > "${marker}"
    record train "${variant}" "${seed}" - $((SECONDS - _t))
  done
done

# ------------------------------------------------------------------ decoding and scoring
for variant in ${variants}; do
  config="${config_dir}/train_${variant}.yaml"
  with_video=$(python3 -c "import sys, yaml; c = yaml.safe_load(open(sys.argv[1])) or {}; print(str(c.get('video_frontend', 'resnet') is not None).lower())" "${config}")
  for seed in ${seeds}; do
    tag="${variant}_seed${seed}"
    exp="${expdir}/asr_${tag}"
    for modality in ${modalities}; do
      if [ "${modality}" != av ] && ! "${with_video}"; then
        log "Decoding ${tag} with --modality ${modality}: skipped (no video stream: av decoding is audio-only)"
        continue
      fi
      if [ "${modality}" = av ]; then sets="${all_sets}"; else sets="${test_sets}"; fi
      todo=""
      for dset in ${sets}; do
        result="${exp}/${inference_tag}_${modality}/${dset}/score_wer/result.txt"
        if [ -f "${result}" ] && [ "${result}" -nt "${exp}/${inference_asr_model}" ] \
            && [ "${result}" -nt "${dumpdir}/raw/${dset}/wav.scp" ]; then
          continue
        fi
        todo+=" ${dset}"
      done
      if [ -z "${todo}" ]; then
        log "Decoding ${tag} (${modality}): every set scored before; skipped"; continue
      fi
      log "Decoding ${tag} (${modality}):${todo}"
      _t=${SECONDS}
      ./run.sh --stage 12 --stop_stage 13 --asr_config "${config}" --asr_tag "${tag}" \
        --inference_tag "${inference_tag}_${modality}" --inference_modality "${modality}" \
        --test_sets "${todo# }" "${common[@]}" "${extra[@]}"
      record decode "${variant}" "${seed}" "${modality}:${todo# }" $((SECONDS - _t))
    done
  done
done

# ------------------------------------------------------------------ report
# shellcheck disable=SC2086
python3 -m espnet2_smile.bin.ablation_report --expdir "${expdir}" --dumpdir "${dumpdir}/raw" --data_dir data \
  --train_set "${train_set}" --valid_set "${valid_set}" --variants ${variants} --seeds ${seeds} \
  --test_sets ${test_sets} --noise_types ${noise_types} --snrs ${snrs} --modalities ${modalities} \
  --inference_tag "${inference_tag}" --reference "${reference}" --plot_noise "${plot_noise}" --out "${report}" \
  --command "${command}" ${plot:+--png "${plot}"}
log "Wrote ${report}. Successfully finished. [elapsed=${SECONDS}s]"
