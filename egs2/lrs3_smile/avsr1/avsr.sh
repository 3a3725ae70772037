#!/usr/bin/env bash
# Audio-visual ASR recipe stages, numbered as in ESPnet's egs2/TEMPLATE/asr1/asr.sh.
# Written for this project: ESPnet's asr.sh is not installable and feeds a single
# speech input; here every stage carries wav.scp *and* video.scp and calls
# espnet2_smile's entry points. Kaldi is not needed (utils/ holds our own helpers).
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
min() { local a=$1 b=$2; echo $((a < b ? a : b)); }
SECONDS=0

# General configuration
stage=1              # Processes starts from the specified stage.
stop_stage=13        # Processes is stopped at the specified stage (14: also pack the model).
skip_data_prep=false # Skip data preparation stages (1-5).
skip_train=false     # Skip training stages (6-11).
skip_eval=false      # Skip decoding and evaluation stages (12-13).
ngpu=0               # The number of GPUs per node (0: CPU). ngpu > 1 trains with DDP on one node.
num_nodes=1          # Nodes for ASR training (stage 11), ngpu GPUs each. > 1 trains with ESPnet's DDP
                     # over srun (--dist_launcher slurm); needs SMILE_CMD_BACKEND=slurm (cmd.sh).
cpu_procs_per_node=1 # CPU training (ngpu=0) only: DDP processes (gloo) per node in stage 11, started
                     # by srun. > 1 needs SMILE_CMD_BACKEND=slurm (cmd.sh).
nj=4                 # The number of parallel jobs (data preparation, collect stats).
inference_nj=4       # The number of parallel jobs in decoding.
gpu_inference=false  # Whether to decode on a GPU.
dumpdir=dump         # Directory to dump features.
expdir=exp           # Directory to save experiments.
python=python3       # Python interpreter (path.sh activates the project's environment).

# Data preparation related
local_data_opts=""     # Options passed to local/data.sh.
speed_perturb_factors="" # Not supported for audio-visual data (stage 2 refuses it).

# Length filtering (stage 4, training and validation sets only)
min_wav_duration=0.5 # Minimum duration in seconds.
max_wav_duration=20  # Maximum duration in seconds.
max_av_diff=3        # Largest audio/video length difference in 25 fps frames.

# Tokenization related
token_type=bpe      # Tokenization type (bpe or char).
nbpe=300            # The number of BPE vocabulary.
bpemode=unigram     # Mode of sentencepiece (unigram or bpe).
bpe_input_sentence_size=100000000 # Size of input sentence for sentencepiece.
bpe_char_cover=1.0  # Character coverage of sentencepiece.
oov="<unk>"         # Out of vocabulary symbol.
blank="<blank>"     # CTC blank symbol.
sos_eos="<sos/eos>" # sos and eos symbol.

# Language model related
use_lm=false     # Use a language model in decoding.
lm_tag=""        # Suffix of the LM experiment directory.
lm_exp=""        # LM experiment directory (default: ${expdir}/lm_train_<tag>).
lm_config=""     # Config of LM training.
lm_args=""       # Extra arguments of LM training, e.g. "--max_epoch 10".
use_ngram=false  # n-gram LMs need KenLM, which this recipe does not install (refused).

# ASR model related
asr_tag=""       # Suffix of the experiment directory (default: the config file name).
asr_exp=""       # Experiment directory (default: ${expdir}/asr_<tag>).
asr_stats_dir="" # Statistics directory (default: ${expdir}/asr_stats_raw_<token>).
asr_config=""    # Config of ASR training.
asr_args=""      # Extra arguments of ASR training, e.g. "--max_epoch 10".
feats_normalize=global_mvn # Normalization of the audio features (global_mvn or utterance_mvn).
pretrained_avhubert="" # AV-HuBERT checkpoint (.pt) initialising the model in stage 11 (empty: none).
num_splits_asr=1 # Not supported (must be 1).

# Decoding related
inference_tag=""    # Suffix of the decoding directories.
inference_config="" # Config for decoding.
inference_args=""   # Extra arguments for decoding, e.g. "--beam_size 10".
inference_lm=valid.loss.ave.pth # Language model file for decoding.
inference_asr_model=valid.acc.ave.pth # ASR model file for decoding.
inference_modality=av # Streams to decode with: av, audio or video.
score_opts=""       # Extra options of sclite.

# Sets
train_set=     # Name of the training set.
valid_set=     # Name of the validation set (model selection).
test_sets=     # Names of the evaluation sets, space separated.
bpe_train_text= # Text for the tokenizer (default: the training set's text).
lm_train_text=  # Text for LM training (default: the training set's text).
lm_dev_text=    # Text for LM validation (default: the validation set's text).
lm_test_text=   # Text for LM perplexity (default: the first test set's text).
cleaner=none    # Text cleaner.

help_message=$(cat << HELP_EOF
Usage: $0 --train-set "<train_set_name>" --valid-set "<valid_set_name>" --test_sets "<test_set_names>"

Options: see the comments at the top of $0; every variable there is an option.
HELP_EOF
)

log "$0 $*"
run_args=$(printf '%q ' "$0" "$@")
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  log "Error: No positional arguments are required."; log "${help_message}"; exit 2
fi

. ./path.sh
. ./cmd.sh

# Check required arguments
[ -z "${train_set}" ] && { log "${help_message}"; log "Error: --train_set is required"; exit 2; }
[ -z "${valid_set}" ] && { log "${help_message}"; log "Error: --valid_set is required"; exit 2; }
[ -z "${test_sets}" ] && { log "${help_message}"; log "Error: --test_sets is required"; exit 2; }
[ -z "${asr_config}" ] && { log "Error: --asr_config is required"; exit 2; }
[ -f "${asr_config}" ] || { log "Error: --asr_config ${asr_config} does not exist"; exit 2; }
if [ -n "${pretrained_avhubert}" ] && [ ! -f "${pretrained_avhubert}" ]; then
  log "Error: --pretrained_avhubert ${pretrained_avhubert} does not exist"; exit 2
fi
if [ -n "${speed_perturb_factors}" ]; then
  log "Error: --speed_perturb_factors is not supported: speeding up the audio would desynchronise it"
  log "       from the 25 fps video (the recipe does not retime video). Leave it empty."
  exit 2
fi
if "${use_ngram}"; then log "Error: --use_ngram true needs KenLM, which this recipe does not provide"; exit 2; fi
[ "${num_splits_asr}" -eq 1 ] || { log "Error: --num_splits_asr must be 1"; exit 2; }
for _v in num_nodes cpu_procs_per_node; do
  [[ "${!_v}" =~ ^[1-9][0-9]*$ ]] || { log "Error: --${_v} must be a positive integer, got ${!_v}"; exit 2; }
done
# Stage 11 runs one training process per node (spawning one per GPU) or, on CPU,
# cpu_procs_per_node per node; more than one in all goes through srun.
if [ "${num_nodes}" -gt 1 ] || { [ "${ngpu}" -eq 0 ] && [ "${cpu_procs_per_node}" -gt 1 ]; }; then
  srun_training=true
else
  srun_training=false
fi
if [ "${ngpu}" -gt 0 ] && [ "${cpu_procs_per_node}" -gt 1 ]; then
  log "Error: --cpu_procs_per_node is for CPU training (--ngpu 0); with GPUs each node runs one process per GPU"; exit 2
fi
if "${srun_training}" && [ "${cmd_backend}" != slurm ]; then
  log "Error: --num_nodes ${num_nodes} --cpu_procs_per_node ${cpu_procs_per_node} starts the training with srun:"
  log "       run with SMILE_CMD_BACKEND=slurm (cmd.sh); the ${cmd_backend} backend trains on one node"; exit 2
fi
case "${token_type}" in bpe|char) ;; *) log "Error: --token_type must be bpe or char, got ${token_type}"; exit 2 ;; esac
case "${inference_modality}" in av|audio|video) ;; *) log "Error: --inference_modality must be av, audio or video"; exit 2 ;; esac

data_feats=${dumpdir}/raw
[ -z "${bpe_train_text}" ] && bpe_train_text="${data_feats}/${train_set}/text"
[ -z "${lm_train_text}" ] && lm_train_text="${data_feats}/${train_set}/text"
[ -z "${lm_dev_text}" ] && lm_dev_text="${data_feats}/${valid_set}/text"
[ -z "${lm_test_text}" ] && lm_test_text="${data_feats}/${test_sets%% *}/text"

token_listdir=data/token_list
if [ "${token_type}" = bpe ]; then
  bpedir="${token_listdir}/bpe_${bpemode}${nbpe}"
  bpeprefix="${bpedir}"/bpe
  bpemodel="${bpeprefix}".model
  token_list="${bpedir}"/tokens.txt
  tok_suffix="${token_type}${nbpe}"
else
  bpemodel=none
  token_list="${token_listdir}/char/tokens.txt"
  tok_suffix="${token_type}"
fi

if [ -z "${asr_tag}" ]; then
  asr_tag="$(basename "${asr_config}" .yaml)_raw_${tok_suffix}"
  if [ -n "${asr_args}" ]; then asr_tag+="$(echo "${asr_args}" | sed -e "s/--/\_/g" -e "s/[ |=/]//g")"; fi
fi
[ -z "${asr_stats_dir}" ] && asr_stats_dir="${expdir}/asr_stats_raw_${tok_suffix}"
[ -z "${asr_exp}" ] && asr_exp="${expdir}/asr_${asr_tag}"
if [ -z "${lm_tag}" ] && [ -n "${lm_config}" ]; then lm_tag="$(basename "${lm_config}" .yaml)_${tok_suffix}"; fi
[ -z "${lm_exp}" ] && lm_exp="${expdir}/lm_${lm_tag:-train_${tok_suffix}}"
lm_stats_dir="${expdir}/lm_stats_${tok_suffix}"

if [ -z "${inference_tag}" ]; then
  if [ -n "${inference_config}" ]; then inference_tag="$(basename "${inference_config}" .yaml)"; else inference_tag=inference; fi
  if [ -n "${inference_args}" ]; then inference_tag+="$(echo "${inference_args}" | sed -e "s/--/\_/g" -e "s/[ |=]//g")"; fi
  if "${use_lm}"; then inference_tag+="_lm_$(basename "${lm_exp}")_$(echo "${inference_lm}" | sed -e "s/\//_/g" -e "s/\.[^.]*$//g")"; fi
  inference_tag+="_asr_model_$(echo "${inference_asr_model}" | sed -e "s/\//_/g" -e "s/\.[^.]*$//g")"
  if [ "${inference_modality}" != av ]; then inference_tag+="_${inference_modality}"; fi
fi

# Merge the stats of collect_stats jobs 1..N ($1/stats.J) into $3, and write
# text_shape.<token_type> (text shapes with the vocabulary size appended), as asr.sh does.
aggregate_stats() {
  local logdir=$1 n=$2 outdir=$3 dirs="" i s vocab
  for i in $(seq "${n}"); do dirs+=" --input_dir ${logdir}/stats.${i}"; done
  # shellcheck disable=SC2086
  ${python} -m espnet2.bin.aggregate_stats_dirs ${dirs} --output_dir "${outdir}"
  vocab=$(wc -l < "${token_list}")
  for s in train valid; do
    awk -v v="${vocab}" '{ print($0 "," v) }' "${outdir}/${s}/text_shape" > "${outdir}/${s}/text_shape.${token_type}"
  done
}

# ========================== Data preparation ==========================
if ! "${skip_data_prep}"; then
  if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: Data preparation for data/${train_set}, data/${valid_set}, etc."
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
  fi

  if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: Speed perturbation: skipped (not supported for audio-visual data)"
  fi

  if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "Stage 3: Format data directories: data/ -> ${data_feats}"
    for dset in "${train_set}" "${valid_set}" ${test_sets}; do
      if [ "${dset}" = "${train_set}" ] || [ "${dset}" = "${valid_set}" ]; then _suf="/org"; else _suf=""; fi
      rm -rf "${data_feats}${_suf}/${dset}"
      ${python} -m espnet2_smile.bin.datadir format "data/${dset}" "${data_feats}${_suf}/${dset}"
      echo raw > "${data_feats}${_suf}/${dset}/feats_type"
    done
  fi

  if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "Stage 4: Remove too short/long utterances and A/V length mismatches: ${data_feats}/org -> ${data_feats}"
    for dset in "${train_set}" "${valid_set}"; do
      rm -rf "${data_feats}/${dset}"
      ${python} -m espnet2_smile.bin.datadir filter_lengths "${data_feats}/org/${dset}" "${data_feats}/${dset}" \
        --min_sec "${min_wav_duration}" --max_sec "${max_wav_duration}" --max_av_diff "${max_av_diff}"
      cp "${data_feats}/org/${dset}/feats_type" "${data_feats}/${dset}/feats_type"
      ${python} -m espnet2_smile.bin.datadir validate "${data_feats}/${dset}"
    done
    # the tokenizer and the LM see training text only
    cut -d' ' -f2- "${data_feats}/${train_set}/text" > "${data_feats}/lm_train.txt"
  fi

  if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "Stage 5: Token list: ${token_type}, from ${bpe_train_text}"
    mkdir -p "$(dirname "${token_list}")"
    _opts=""
    if [ "${token_type}" = bpe ]; then
      cut -d' ' -f2- "${bpe_train_text}" > "${bpedir}/train.txt"
      ${python} -m espnet2_smile.bin.train_sentencepiece --input "${bpedir}/train.txt" \
        --model_prefix "${bpeprefix}" --vocab_size "${nbpe}" --model_type "${bpemode}" \
        --character_coverage "${bpe_char_cover}" --input_sentence_size "${bpe_input_sentence_size}"
      _opts="--bpemodel ${bpemodel}"
    fi
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.tokenize_text --token_type "${token_type}" --input "${bpe_train_text}" \
      --output "${token_list}" ${_opts} --field 2- --cleaner "${cleaner}" --write_vocabulary true \
      --add_symbol "${blank}:0" --add_symbol "${oov}:1" --add_symbol "${sos_eos}:-1"
  fi
else
  log "Skip the stages for data preparation"
fi

# ========================== Language model ==========================
if ! "${skip_train}" && "${use_lm}"; then
  [ -z "${lm_config}" ] && { log "Error: --use_lm true needs --lm_config"; exit 2; }
  if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    log "Stage 6: LM collect stats: train_set=${lm_train_text}, dev_set=${lm_dev_text}"
    _logdir="${lm_stats_dir}/logdir"; rm -rf "${_logdir}"; mkdir -p "${_logdir}"
    _nj=$(min "${nj}" "$(wc -l < "${lm_dev_text}")")
    ${python} -m espnet2_smile.bin.datadir split "${lm_train_text}" "${_nj}" "${_logdir}/train.scp"
    ${python} -m espnet2_smile.bin.datadir split "${lm_dev_text}" "${_nj}" "${_logdir}/dev.scp"
    # shellcheck disable=SC2086
    ${train_cmd} JOB=1:"${_nj}" "${_logdir}"/stats.JOB.log \
      ${python} -m espnet2.bin.lm_train --collect_stats true --use_preprocessor true \
        --bpemodel "${bpemodel}" --token_type "${token_type}" --token_list "${token_list}" \
        --non_linguistic_symbols none --cleaner "${cleaner}" --g2p none \
        --train_data_path_and_name_and_type "${lm_train_text},text,text" \
        --valid_data_path_and_name_and_type "${lm_dev_text},text,text" \
        --train_shape_file "${_logdir}/train.scp.JOB" --valid_shape_file "${_logdir}/dev.scp.JOB" \
        --output_dir "${_logdir}/stats.JOB" --config "${lm_config}" ${lm_args}
    aggregate_stats "${_logdir}" "${_nj}" "${lm_stats_dir}"
  fi
  if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    log "Stage 7: LM training: ${lm_exp}"
    mkdir -p "${lm_exp}"
    # shellcheck disable=SC2086
    ${cuda_cmd} --gpu "${ngpu}" "${lm_exp}/train.log" \
      ${python} -m espnet2.bin.lm_train --ngpu "${ngpu}" --use_preprocessor true \
        --bpemodel "${bpemodel}" --token_type "${token_type}" --token_list "${token_list}" \
        --non_linguistic_symbols none --cleaner "${cleaner}" --g2p none \
        --train_data_path_and_name_and_type "${lm_train_text},text,text" \
        --valid_data_path_and_name_and_type "${lm_dev_text},text,text" \
        --train_shape_file "${lm_stats_dir}/train/text_shape.${token_type}" \
        --valid_shape_file "${lm_stats_dir}/valid/text_shape.${token_type}" \
        --fold_length 150 --resume true --output_dir "${lm_exp}" --config "${lm_config}" ${lm_args}
  fi
  if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    log "Stage 8: LM perplexity on ${lm_test_text}"
    _dir="${lm_exp}/perplexity_test"; mkdir -p "${_dir}"
    ${cuda_cmd} --gpu "${ngpu}" "${_dir}/calc_perplexity.log" \
      ${python} -m espnet2.bin.lm_calc_perplexity --ngpu "${ngpu}" \
        --data_path_and_name_and_type "${lm_test_text},text,text" \
        --train_config "${lm_exp}/config.yaml" --model_file "${lm_exp}/${inference_lm}" \
        --output_dir "${_dir}"
    log "Perplexity: $(cat "${_dir}/ppl")"
  fi
  if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    log "Stage 9: n-gram LM: skipped (use_ngram=false)"
  fi
else
  log "Skip the stages for LM training"
fi

# ========================== ASR training ==========================
asr_data_args() {  # $1: train|valid, $2: data dir
  echo "--${1}_data_path_and_name_and_type ${2}/wav.scp,speech,sound" \
       "--${1}_data_path_and_name_and_type ${2}/video.scp,video,kaldi_ark" \
       "--${1}_data_path_and_name_and_type ${2}/text,text,text"
}
if ! "${skip_train}"; then
  if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ]; then
    log "Stage 10: ASR collect stats: train_set=${data_feats}/${train_set}, valid_set=${data_feats}/${valid_set}"
    _logdir="${asr_stats_dir}/logdir"
    rm -rf "${_logdir}"; mkdir -p "${_logdir}"
    _nj=$(min "${nj}" "$(wc -l < "${data_feats}/${valid_set}/wav.scp")")
    ${python} -m espnet2_smile.bin.datadir split "${data_feats}/${train_set}/wav.scp" "${_nj}" "${_logdir}/train.scp"
    ${python} -m espnet2_smile.bin.datadir split "${data_feats}/${valid_set}/wav.scp" "${_nj}" "${_logdir}/valid.scp"
    log "Generate '${_logdir}/stats.JOB.log' (${_nj} jobs)"
    # shellcheck disable=SC2086,SC2046
    ${train_cmd} JOB=1:"${_nj}" "${_logdir}"/stats.JOB.log \
      ${python} -m espnet2_smile.bin.avsr_train --collect_stats true --use_preprocessor true \
        --bpemodel "${bpemodel}" --token_type "${token_type}" --token_list "${token_list}" \
        --cleaner "${cleaner}" --g2p none \
        $(asr_data_args train "${data_feats}/${train_set}") $(asr_data_args valid "${data_feats}/${valid_set}") \
        --train_shape_file "${_logdir}/train.scp.JOB" --valid_shape_file "${_logdir}/valid.scp.JOB" \
        --output_dir "${_logdir}/stats.JOB" --ngpu 0 --num_workers 0 \
        --config "${asr_config}" ${asr_args}
    aggregate_stats "${_logdir}" "${_nj}" "${asr_stats_dir}"
  fi

  if [ ${stage} -le 11 ] && [ ${stop_stage} -ge 11 ]; then
    log "Stage 11: ASR training: train_set=${data_feats}/${train_set}, valid_set=${data_feats}/${valid_set}"
    mkdir -p "${asr_exp}"
    if [ "${feats_normalize}" = global_mvn ]; then
      _opts="--normalize global_mvn --normalize_conf stats_file=${asr_stats_dir}/train/feats_stats.npz "
    else
      _opts="--normalize ${feats_normalize} "
    fi
    _cmd_opts=""; _launcher=""
    if "${srun_training}"; then
      # utils/slurm_dist_launch.sh adds --dist_launcher slurm and the master address and port
      if [ "${ngpu}" -gt 0 ]; then
        # one task per node, which spawns one process per GPU
        _opts+="--multiprocessing_distributed true "
        _cmd_opts="--num_nodes ${num_nodes} --ntasks_per_node 1 --num_threads ${ngpu}"
      else
        # one task per process; gloo, as NCCL needs GPUs
        _opts+="--multiprocessing_distributed false --dist_backend gloo "
        _cmd_opts="--num_nodes ${num_nodes} --ntasks_per_node ${cpu_procs_per_node} --num_threads 1"
      fi
      _launcher="utils/slurm_dist_launch.sh"
      log "Distributed training through srun: ${num_nodes} node(s), $(( ngpu > 0 ? ngpu : cpu_procs_per_node )) process(es) each"
    elif [ "${ngpu}" -gt 1 ]; then
      _opts+="--multiprocessing_distributed true "
    fi
    if [ -n "${pretrained_avhubert}" ]; then _opts+="--pretrained_avhubert ${pretrained_avhubert} "; fi
    echo "${run_args} --stage 11 \"\$@\"; exit \$?" > "${asr_exp}/run.sh"; chmod +x "${asr_exp}/run.sh"
    log "ASR training started... log: '${asr_exp}/train.log'"
    # shellcheck disable=SC2086,SC2046
    ${cuda_cmd} --gpu "${ngpu}" ${_cmd_opts} "${asr_exp}/train.log" \
      ${_launcher} ${python} -m espnet2_smile.bin.avsr_train --use_preprocessor true \
        --bpemodel "${bpemodel}" --token_type "${token_type}" --token_list "${token_list}" \
        --cleaner "${cleaner}" --g2p none \
        $(asr_data_args train "${data_feats}/${train_set}") $(asr_data_args valid "${data_feats}/${valid_set}") \
        --train_shape_file "${asr_stats_dir}/train/speech_shape" \
        --train_shape_file "${asr_stats_dir}/train/text_shape.${token_type}" \
        --valid_shape_file "${asr_stats_dir}/valid/speech_shape" \
        --valid_shape_file "${asr_stats_dir}/valid/text_shape.${token_type}" \
        --fold_length 80000 --fold_length 150 \
        --resume true --ngpu "${ngpu}" --output_dir "${asr_exp}" \
        --config "${asr_config}" ${_opts} ${asr_args}
  fi
else
  log "Skip the training stages"
fi

# ========================== Decoding and scoring ==========================
if ! "${skip_eval}"; then
  if [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ]; then
    log "Stage 12: Decoding: ${asr_exp}/${inference_tag}"
    _opts=""
    if [ -n "${inference_config}" ]; then _opts+="--config ${inference_config} "; fi
    if "${use_lm}"; then _opts+="--lm_train_config ${lm_exp}/config.yaml --lm_file ${lm_exp}/${inference_lm} "; fi
    if "${gpu_inference}"; then _cmd="${cuda_cmd}"; _ngpu=1; else _cmd="${decode_cmd}"; _ngpu=0; fi
    [ -f "${asr_exp}/${inference_asr_model}" ] || { log "Error: ${asr_exp}/${inference_asr_model} does not exist (train first)"; exit 1; }
    for dset in ${test_sets}; do
      _data="${data_feats}/${dset}"
      _dir="${asr_exp}/${inference_tag}/${dset}"
      _logdir="${_dir}/logdir"
      rm -rf "${_logdir}"; mkdir -p "${_logdir}"
      _nj=$(min "${inference_nj}" "$(wc -l < "${_data}/wav.scp")")
      ${python} -m espnet2_smile.bin.datadir split "${_data}/wav.scp" "${_nj}" "${_logdir}/keys"
      log "Decoding started... log: '${_logdir}/asr_inference.*.log'"
      # shellcheck disable=SC2086
      ${_cmd} --gpu "${_ngpu}" JOB=1:"${_nj}" "${_logdir}"/asr_inference.JOB.log \
        ${python} -m espnet2_smile.bin.avsr_inference --ngpu "${_ngpu}" \
          --data_path_and_name_and_type "${_data}/wav.scp,speech,sound" \
          --data_path_and_name_and_type "${_data}/video.scp,video,kaldi_ark" \
          --key_file "${_logdir}/keys.JOB" --modality "${inference_modality}" \
          --asr_train_config "${asr_exp}/config.yaml" --asr_model_file "${asr_exp}/${inference_asr_model}" \
          --output_dir "${_logdir}/output.JOB" ${_opts} ${inference_args}
      for f in token token_int score text; do
        for i in $(seq "${_nj}"); do cat "${_logdir}/output.${i}/1best_recog/${f}"; done | LC_ALL=C sort -k1,1 > "${_dir}/${f}"
      done
      _n_ref=$(wc -l < "${_data}/wav.scp"); _n_hyp=$(wc -l < "${_dir}/text")
      [ "${_n_ref}" -eq "${_n_hyp}" ] || { log "Error: ${_dir}/text has ${_n_hyp} lines for ${_n_ref} utterances"; exit 1; }
    done
  fi

  if [ ${stage} -le 13 ] && [ ${stop_stage} -ge 13 ]; then
    log "Stage 13: Scoring with sclite"
    for dset in ${test_sets}; do
      _data="${data_feats}/${dset}"
      _dir="${asr_exp}/${inference_tag}/${dset}"
      _types="cer wer"; _opts=""
      if [ "${token_type}" = bpe ]; then _types+=" ter"; _opts="--bpemodel ${bpemodel}"; fi
      # shellcheck disable=SC2086
      ${python} -m espnet2_smile.bin.make_trn --ref "${_data}/text" --hyp "${_dir}/text" \
        --utt2spk "${_data}/utt2spk" --outdir "${_dir}" --types ${_types} --cleaner "${cleaner}" ${_opts}
      for _type in ${_types}; do
        _scoredir="${_dir}/score_${_type}"
        # shellcheck disable=SC2086
        "${sclite}" ${score_opts} -r "${_scoredir}/ref.trn" trn -h "${_scoredir}/hyp.trn" trn \
          -i rm -o all stdout > "${_scoredir}/result.txt"
        log "Write ${_type} result in ${_scoredir}/result.txt"
        grep -e Avg -e SPKR -m 2 "${_scoredir}/result.txt"
      done
    done
    ${python} -m espnet2_smile.bin.show_results "${expdir}" > "${expdir}/RESULTS.md"
    cp "${expdir}/RESULTS.md" RESULTS.md
    cat RESULTS.md
  fi
else
  log "Skip the evaluation stages"
fi

if [ ${stage} -le 14 ] && [ ${stop_stage} -ge 14 ]; then
  _packed="${asr_exp}/packed.zip"
  log "Stage 14: Pack the model: ${_packed} (transcribe videos: python -m espnet2_smile.bin.transcribe --model ${_packed} VIDEO.mp4)"
  _opts=()
  [ "${token_type}" = bpe ] && _opts+=(--option "${bpemodel}")
  _stats="${asr_stats_dir}/train/feats_stats.npz"
  [ -f "${_stats}" ] && _opts+=(--option "${_stats}")
  if "${use_lm}"; then _opts+=(--lm_train_config "${lm_exp}/config.yaml" --lm_file "${lm_exp}/${inference_lm}"); fi
  [ -n "${inference_config}" ] && _opts+=(--decode_config "${inference_config}")
  ${python} -m espnet2_smile.bin.pack_model --asr_train_config "${asr_exp}/config.yaml" \
    --asr_model_file "${asr_exp}/${inference_asr_model}" ${_opts[@]+"${_opts[@]}"} --outpath "${_packed}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
