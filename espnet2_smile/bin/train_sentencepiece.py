#!/usr/bin/env python3
"""Train a sentencepiece model (the recipe's stand-in for the ``spm_train`` binary).

    python -m espnet2_smile.bin.train_sentencepiece --input train.txt \\
        --model_prefix data/token_list/bpe_unigram300/bpe --vocab_size 300 --model_type unigram
"""

import argparse
import sys
from pathlib import Path

import sentencepiece


def main(cmd=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="one sentence per line")
    parser.add_argument("--model_prefix", required=True)
    parser.add_argument("--vocab_size", required=True, type=int)
    parser.add_argument("--model_type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    parser.add_argument("--character_coverage", type=float, default=1.0)
    parser.add_argument("--input_sentence_size", type=int, default=100000000)
    args = parser.parse_args(cmd)
    lines = [line for line in args.input.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        print(f"train_sentencepiece: {args.input} has no text", file=sys.stderr)
        return 1
    Path(args.model_prefix).parent.mkdir(parents=True, exist_ok=True)
    try:
        sentencepiece.SentencePieceTrainer.train(
            input=str(args.input),
            model_prefix=args.model_prefix,
            vocab_size=args.vocab_size,
            model_type=args.model_type,
            character_coverage=args.character_coverage,
            input_sentence_size=args.input_sentence_size,
            shuffle_input_sentence=True,
            seed_sentencepiece_size=1000000,
            minloglevel=1,
        )
    except RuntimeError as e:  # e.g. vocab_size larger than the text allows
        print(f"train_sentencepiece: {args.input}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
