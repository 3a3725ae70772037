#!/usr/bin/env python3
"""sclite ``trn`` files of references and hypotheses, as ESPnet's asr.sh writes them.

    python -m espnet2_smile.bin.make_trn --ref dump/raw/test/text --hyp exp/.../test/text \\
        --utt2spk dump/raw/test/utt2spk --outdir exp/.../test --types wer cer ter \\
        --bpemodel data/token_list/bpe_unigram300/bpe.model [--cleaner none]

writes ``<outdir>/score_<type>/{ref,hyp}.trn``: one line per utterance of
``utt2spk``, the text tokenised by ESPnet's tokenizers (word / char with ``<space>`` /
bpe pieces; the cleaner applies to references only), followed by ``(<spk>-<utt>)``.
One process instead of one ``tokenize_text`` call per file.
"""

import argparse
import sys
from pathlib import Path

from espnet2_smile.utils.datadir import read_scp

TOKEN_TYPES = {"wer": "word", "cer": "char", "ter": "bpe"}


def main(cmd=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, type=Path)
    parser.add_argument("--hyp", required=True, type=Path)
    parser.add_argument("--utt2spk", required=True, type=Path)
    parser.add_argument("--outdir", required=True, type=Path)
    parser.add_argument("--types", nargs="+", default=["wer", "cer"], choices=sorted(TOKEN_TYPES))
    parser.add_argument("--bpemodel", default=None)
    parser.add_argument("--cleaner", default="none")
    args = parser.parse_args(cmd)

    import espnet2_smile  # noqa: F401  (offline-safe nltk before ESPnet's text modules)
    from espnet2.text.build_tokenizer import build_tokenizer
    from espnet2.text.cleaner import TextCleaner

    utt2spk = read_scp(args.utt2spk)
    texts = {"ref": read_scp(args.ref), "hyp": read_scp(args.hyp)}
    for side, table in texts.items():
        missing = [k for k in utt2spk if k not in table]
        if missing:
            print(f"make_trn: {len(missing)} utterances have no {side} line in {getattr(args, side)}, "
                  f"e.g. {missing[0]}", file=sys.stderr)
            return 1
    cleaner = TextCleaner(None if args.cleaner == "none" else args.cleaner)
    for kind in args.types:
        token_type = TOKEN_TYPES[kind]
        if token_type == "bpe" and not args.bpemodel:
            print("make_trn: --types ter needs --bpemodel", file=sys.stderr)
            return 1
        tokenizer = build_tokenizer(
            token_type=token_type,
            bpemodel=args.bpemodel if token_type == "bpe" else None,
            non_linguistic_symbols=None,
            remove_non_linguistic_symbols=token_type != "bpe",
        )
        outdir = args.outdir / f"score_{kind}"
        outdir.mkdir(parents=True, exist_ok=True)
        for side, table in texts.items():
            with open(outdir / f"{side}.trn", "w", encoding="utf-8") as f:
                for utt, spk in utt2spk.items():
                    line = " ".join(table[utt].split())
                    if side == "ref":
                        line = cleaner(line)
                    f.write(f"{' '.join(tokenizer.text2tokens(line))}\t({spk}-{utt})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
