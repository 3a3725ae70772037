#!/usr/bin/env bash
# Noisy copies of test sets: data/<set> -> data/<set>_<type>_snr<tag> (e.g.
# data/test_babble_snrm5 for -5 dB): new 16 kHz wav files mixed by RMS at each SNR,
# the same video.scp, text, utt2spk and spk2utt. Deterministic (a rerun writes the same
# bytes), written under a temporary name and renamed; finished sets are skipped.
# Decode them by adding the names to --test_sets (stage 3 dumps them like any test set):
#   ./run.sh --stage 3 --test_sets "test $(local/make_noisy_sets.sh --names true)"
set -euo pipefail
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

sets=test                       # Clean test sets to copy (space or comma separated).
noise_dir=""                    # Folder of noise types (default: <corpus>/noise/test of the built-in corpus).
noise_types="babble speech white" # Sub-folders of noise_dir (NAME or NAME=FOLDER; white without a folder is generated).
snrs="-5 0 5 10"                # SNRs in dB (space or comma separated).
seed=1                          # Seed of the per-utterance noise draws.
names=false                     # Only print the names of the noisy sets, one line each.

help_message="Usage: $0 [--sets test] [--noise_dir DIR] [--noise_types 'babble speech white'] [--snrs '-5 0 5 10'] [--seed 1] [--names true]"
. utils/parse_options.sh
. ./path.sh

# shellcheck disable=SC2206
_sets=(${sets//,/ }); _types=(${noise_types//,/ }); _snrs=(${snrs//,/ })
if "${names}"; then
  python3 -m espnet2_smile.bin.make_noisy_sets names --sets "${_sets[@]}" --noise_types "${_types[@]}" --snrs "${_snrs[@]}"
  exit 0
fi
_opts=()
[ -n "${noise_dir}" ] && _opts=(--noise_dir "${noise_dir}")
log "Noisy copies of ${_sets[*]}: ${_types[*]} at ${_snrs[*]} dB (seed ${seed})"
made=$(python3 -m espnet2_smile.bin.make_noisy_sets make --data_dir data --sets "${_sets[@]}" \
  --noise_types "${_types[@]}" --snrs "${_snrs[@]}" --seed "${seed}" "${_opts[@]}")
for dset in ${made}; do
  python3 -m espnet2_smile.bin.datadir validate "data/${dset}"
done
log "Successfully finished."
