#!/usr/bin/env bash
# Stage 1: data/{train,dev,test} from LRS3 (db.sh: LRS3=...) or, when LRS3 is empty,
# from the built-in synthetic corpus (generated first; a rerun completes only what is
# missing). Bad clips are skipped and listed in data/<set>/skipped.txt.
# With --noise_types, also the noisy copies of data/test (local/make_noisy_sets.sh);
# with the built-in corpus, data/noise_train.scp lists its training noise files.
set -euo pipefail
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

nj=2                  # Parallel jobs.
train_subset=trainval # trainval or 30h (LRS3's 30 h), full or 433h (plus pretrain, cut into utterances of <= pretrain_max_sec).
pretrain_max_sec=15   # Pretrain clips longer than this are cut at word gaps (as AV-HuBERT's LRS3 preparation).
pretrain_min_gap=0.4  # ... in pauses between words longer than this (seconds).
valid_ids=""          # The valid-id list (default: <LRS3 root>/lrs3-valid.id).
roi_method=fixed      # Mouth-ROI extraction: fixed (a calibrated crop of LRS3-framed faces), landmarks (aligned with
                      # the 68-point landmark files of --landmarks_dir) or mediapipe (landmarks computed first; make mediapipe-env).
landmarks_dir=""      # Landmark files <dir>/<split>/<video id>/<clip id>.{pkl,npz,npy} (landmarks: required; mediapipe: output, default data/landmarks_mediapipe).
mediapipe_python=""   # Interpreter of the mediapipe environment (default: <repository>/.venv-mediapipe/bin/python).
max_sec=600           # Clips longer than this (seconds) are skipped.
max_av_diff=3         # Clips whose audio and video lengths differ by more than this many 25 fps frames are skipped.
corpus_size=default   # Built-in corpus size: tiny, small or default.
corpus_seed=1         # Built-in corpus seed.
corpus_dir=""         # Built-in corpus folder (default: downloads/builtin_<size>_seed<seed>).
noise_types=""        # Noisy test sets of these noise types, comma separated (e.g. babble,speech,white); empty: none.
snrs="-5,0,5,10"      # SNRs of the noisy test sets in dB, comma separated.
noise_dir=""          # Test noise folder (default: <corpus>/noise/test of the built-in corpus; LRS3: e.g. MUSAN).
noise_seed=1          # Seed of the noise draws of the noisy test sets.

help_message="Usage: $0 [--nj N] [--train_subset trainval|30h|full|433h] [--valid_ids FILE] [--roi_method fixed|landmarks|mediapipe [--landmarks_dir DIR] [--mediapipe_python PATH]] [--corpus_size tiny|small|default] [--noise_types babble,speech,white --snrs -5,0,5,10 [--noise_dir DIR]]"
. ./db.sh
. utils/parse_options.sh
. ./path.sh

if [ -z "${LRS3}" ]; then
  [ -z "${corpus_dir}" ] && corpus_dir="downloads/builtin_${corpus_size}_seed${corpus_seed}"
  log "LRS3 is not set in db.sh: using the built-in corpus ${corpus_dir} (size ${corpus_size})"
  python3 -m espnet2_smile.bin.make_corpus --out "${corpus_dir}" --size "${corpus_size}" \
    --seed "${corpus_seed}" --nj "${nj}" --no_progress
  root="${corpus_dir}"
else
  [ -d "${LRS3}" ] || { log "Error: LRS3=${LRS3} (db.sh) does not exist"; exit 1; }
  root="${LRS3}"
fi
[ -z "${valid_ids}" ] && valid_ids="${root}/lrs3-valid.id"
roi_opts=()
[ -n "${landmarks_dir}" ] && roi_opts+=(--landmarks_dir "${landmarks_dir}")
[ -n "${mediapipe_python}" ] && roi_opts+=(--mediapipe_python "${mediapipe_python}")

python3 -m espnet2_smile.bin.prepare_lrs3 --root "${root}" --out data --valid_ids "${valid_ids}" \
  --train_subset "${train_subset}" --pretrain_max_sec "${pretrain_max_sec}" --pretrain_min_gap "${pretrain_min_gap}" --roi_method "${roi_method}" --max_sec "${max_sec}" \
  --max_av_diff "${max_av_diff}" --nj "${nj}" ${roi_opts[@]+"${roi_opts[@]}"}
for dset in train dev test; do
  python3 -m espnet2_smile.bin.datadir validate "data/${dset}"
done
if [ -d "${root}/noise/train" ]; then  # the built-in corpus: training noise, disjoint from the test noise
  python3 -m espnet2_smile.bin.make_noisy_sets scp --noise_dir "${root}/noise/train" --out data/noise_train.scp
fi
if [ -n "${noise_types}" ]; then
  local/make_noisy_sets.sh --sets test --noise_dir "${noise_dir}" --noise_types "${noise_types}" \
    --snrs "${snrs}" --seed "${noise_seed}"
fi
log "Successfully finished."
