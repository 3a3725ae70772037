#!/usr/bin/env bash
# SMILE audio-visual speech recognition on LRS3 (db.sh) or, when LRS3 is not set,
# on the built-in synthetic corpus. Ablations: --asr_config conf/tuning/train_smile_nofusion.yaml
set -euo pipefail

train_set=train
valid_set=dev
test_sets="test"

asr_config=conf/train.yaml
inference_config=conf/decode.yaml

# --nbpe 100 suits the built-in corpus (485 words); on LRS3 use --nbpe 1000 (README.md)
./avsr.sh \
    --nj 2 \
    --inference_nj 2 \
    --token_type bpe \
    --nbpe 100 \
    --bpemode unigram \
    --max_wav_duration 20 \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --asr_config "${asr_config}" \
    --inference_config "${inference_config}" "$@"
