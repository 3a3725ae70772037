#!/usr/bin/env python3
"""Pack a trained model into one archive (recipe stage 14), with ESPnet's packer.

    python -m espnet2_smile.bin.pack_model --asr_train_config exp/asr_smile/config.yaml \\
        --asr_model_file exp/asr_smile/valid.acc.ave.pth --decode_config conf/decode.yaml \\
        --option data/token_list/bpe_unigram100/bpe.model \\
        --option exp/asr_stats_raw_bpe100/train/feats_stats.npz --outpath exp/asr_smile/packed.zip

The archive (``.zip`` or ``.tar.gz``) holds ``meta.yaml`` and the files at their paths
relative to the current folder; run it in the recipe folder, where the training config's
paths (BPE model, feature statistics) are relative, so that ``unpack`` (ESPnet's, used by
``espnet2_smile.bin.transcribe``) rewrites them to the unpacked files. ``--lm_train_config``
/ ``--lm_file`` add a language model. Files the config refers to but that are not packed
are reported (a transcription with the archive would not find them).
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, List

import yaml
from espnet2.main_funcs.pack_funcs import pack


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def unpacked_references(config: Path, packed: List[str]) -> List[str]:
    """Existing files named in ``config`` (a YAML file) that are not in ``packed``."""
    with open(config, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    packed_set = {str(Path(p)) for p in packed}
    out = []
    for key in ("bpemodel", "normalize_conf", "frontend_conf", "lm_conf"):
        for s in _strings(conf.get(key)):
            if "/" in s and Path(s).is_file() and str(Path(s)) not in packed_set:
                out.append(s)
    return sorted(set(out))


def main(cmd=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr_train_config", required=True, type=Path)
    parser.add_argument("--asr_model_file", required=True, type=Path)
    parser.add_argument("--decode_config", type=Path, default=None, help="decoding options kept with the model")
    parser.add_argument("--lm_train_config", type=Path, default=None)
    parser.add_argument("--lm_file", type=Path, default=None)
    parser.add_argument("--option", type=Path, action="append", default=[], help="another file to pack")
    parser.add_argument("--outpath", required=True, type=Path, help=".zip or .tar.gz")
    args = parser.parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    if (args.lm_train_config is None) != (args.lm_file is None):
        logging.error("give both --lm_train_config and --lm_file, or neither")
        return 2
    files = {"asr_model_file": args.asr_model_file}
    yaml_files = {"asr_train_config": args.asr_train_config}
    if args.decode_config is not None:
        yaml_files["decode_config"] = args.decode_config
    if args.lm_file is not None:
        files["lm_file"] = args.lm_file
        yaml_files["lm_train_config"] = args.lm_train_config
    for path in [*files.values(), *yaml_files.values(), *args.option]:
        if not path.is_file():
            logging.error(f"{path}: no such file")
            return 1
    if not str(args.outpath).endswith((".zip", ".tar.gz", ".tgz")):
        logging.error(f"--outpath {args.outpath}: must end in .zip or .tar.gz")
        return 2
    packed = [str(p) for p in args.option]
    for name in unpacked_references(args.asr_train_config, packed):
        logging.warning(f"{args.asr_train_config} refers to {name}, which is not packed (add --option {name})")
    outpath = args.outpath.resolve()
    # ESPnet's pack names each file by its path relative to the current folder (symbolic
    # links resolved, absolute outside it); a staging copy under the given relative names
    # keeps the names the training config uses, whatever the links point at.
    with tempfile.TemporaryDirectory(prefix="pack_") as staging:
        staged = {}
        for path in [*files.values(), *yaml_files.values(), *args.option]:
            name = archive_name(path)
            (Path(staging) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(staging) / name)
            staged[path] = name
        cwd = os.getcwd()
        os.chdir(staging)
        try:
            pack(files={k: staged[v] for k, v in files.items()},
                 yaml_files={k: staged[v] for k, v in yaml_files.items()},
                 outpath=outpath, option=[staged[p] for p in args.option])
        finally:
            os.chdir(cwd)
    return 0


def archive_name(path: Path) -> str:
    """The name of ``path`` in the archive: as given when relative and inside the
    current folder (so the config's references match), else ``extra/<file name>``."""
    if not path.is_absolute() and ".." not in path.parts:
        return str(path)
    return f"extra/{path.name}"


if __name__ == "__main__":
    sys.exit(main())
