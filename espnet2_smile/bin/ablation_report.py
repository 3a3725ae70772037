#!/usr/bin/env python3
"""RESULTS_ABLATION.md: WER of every variant, seed and test condition, with paired
bootstrap confidence intervals of each ablation's difference to full SMILE.

    python -m espnet2_smile.bin.ablation_report --expdir exp \\
        --variants smile smile_nofusion smile_nosiamese smile_mlm baseline audio_only \\
        --seeds 1 2 3 --test_sets test --noise_types babble speech white --snrs -5 0 5 10 \\
        --modalities av audio video --inference_tag decode --out RESULTS_ABLATION.md

Reads ``<expdir>/asr_<variant>_seed<seed>/<inference_tag>_<modality>/<set>/score_wer/result.txt``
(written by stages 12-13 through ``local/run_ablations.sh``). Conditions: the clean
test set and each ``<set>_<type>_snr<tag>`` decoded audio-visually, and the clean set
decoded with ``--modality audio`` / ``video``. A table cell is the mean ± sample
standard deviation over seeds of sclite's ``Sum/Avg`` WER. A difference is
``WER(variant) - WER(reference)`` from the per-utterance error counts of the same
reports (the mean over each system's seeds per utterance), with a paired bootstrap
interval over test utterances (``espnet2_smile.utils.bootstrap``). ``wer_vs_snr.png``
(next to ``--out``) plots WER against SNR for ``--plot_noise``.
"""

import argparse
import json
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_smile.prep.noise import DONE, noisy_set_name, parse_snr_list, parse_type_list
from espnet2_smile.utils.bootstrap import BootstrapCI, paired_bootstrap
from espnet2_smile.utils.sclite import error_rate, utterance_scores
from espnet2_smile.utils.machine import cpu_name

ABLATIONS = ("smile_nofusion", "smile_nosiamese", "smile_mlm", "baseline", "audio_only")
"""Variants compared with the reference first, in this order (those present); any other
variant of the study follows in its given order."""

MODALITY_LABEL = {"audio": "audio only", "video": "video only"}
DASH = "–"


@dataclass(frozen=True)
class Condition:
    base: str  # clean test set
    label: str  # column name
    modality: str  # av | audio | video
    dset: str  # data set decoded
    noise: Optional[str] = None
    snr: Optional[float] = None


@dataclass
class Cell:
    wers: Dict[int, float] = field(default_factory=dict)  # seed -> sclite Sum/Avg WER
    scores: Dict[int, Dict[str, Tuple[int, int, int, int]]] = field(default_factory=dict)


def conditions(base: str, noise_types: Sequence[str], snrs: Sequence[float], modalities: Sequence[str]) -> List[Condition]:
    out = [Condition(base, "clean", "av", base)] if "av" in modalities else []
    if "av" in modalities:
        for kind in noise_types:
            for snr in sorted(snrs):
                out.append(Condition(base, f"{kind} {snr:g} dB", "av", noisy_set_name(base, kind, snr), kind, snr))
    for mod in modalities:
        if mod != "av":
            out.append(Condition(base, MODALITY_LABEL[mod], mod, base))
    return out


def run_dir(expdir: Path, variant: str, seed: int) -> Path:
    """The experiment directory of one training run (``local/run_ablations.sh``'s naming)."""
    return expdir / f"asr_{variant}_seed{seed}"


def run_config(expdir: Path, variant: str, seed: int) -> Optional[dict]:
    """The run's config.yaml as written by the trainer, or None when it has none."""
    import yaml

    config = run_dir(expdir, variant, seed) / "config.yaml"
    if not config.is_file():
        return None
    with config.open(encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def result_path(expdir: Path, variant: str, seed: int, tag: str, cond: Condition) -> Path:
    return run_dir(expdir, variant, seed) / f"{tag}_{cond.modality}" / cond.dset / "score_wer" / "result.txt"


def has_video(expdir: Path, variant: str, seeds: Sequence[int]) -> Optional[bool]:
    """Whether a variant's trained model has a video frontend (its config.yaml)."""
    for seed in seeds:
        conf = run_config(expdir, variant, seed)
        if conf is not None:
            return conf.get("video_frontend", "resnet") is not None
    return None


def load(expdir: Path, variants, seeds, tag, conds) -> Dict[Tuple[str, Condition], Cell]:
    cells: Dict[Tuple[str, Condition], Cell] = {}
    for variant in variants:
        for cond in conds:
            cell = Cell()
            for seed in seeds:
                path = result_path(expdir, variant, seed, tag, cond)
                if not path.is_file():
                    continue
                wer = error_rate(path)
                scores = utterance_scores(path)
                errors = sum(s + d + i for _, s, d, i in scores.values())
                words = sum(c + s + d for c, s, d, _ in scores.values())
                pooled = 100.0 * errors / max(words, 1)
                if abs(pooled - wer) > 0.051:
                    raise ValueError(
                        f"{path}: per-utterance scores give {pooled:.2f}% but Sum/Avg says {wer}%"
                    )
                cell.wers[seed] = wer
                cell.scores[seed] = scores
            cells[(variant, cond)] = cell
    return cells


def mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else None)


def format_cell(cell: Cell, n_seeds: int) -> str:
    if not cell.wers:
        return DASH
    mean, std = mean_std(list(cell.wers.values()))
    text = f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"
    if len(cell.wers) < n_seeds:
        text += f" ({len(cell.wers)}/{n_seeds} seeds)"
    return text


def compare(a: Cell, b: Cell, where: str, n_boot: int) -> BootstrapCI:
    """Paired bootstrap of WER(a) - WER(b) over utterances, seeds pooled per utterance."""
    ids = None
    for cell in (a, b):
        for seed, scores in cell.scores.items():
            if ids is None:
                ids = sorted(scores)
            elif sorted(scores) != ids:
                raise ValueError(f"{where}: seed {seed} was scored on other utterances than the rest")
    assert ids is not None
    ref_words = None
    for cell in (a, b):
        for seed, scores in cell.scores.items():
            words = np.array([scores[u][0] + scores[u][1] + scores[u][2] for u in ids])
            if ref_words is None:
                ref_words = words
            elif not np.array_equal(words, ref_words):
                raise ValueError(f"{where}: seed {seed} has other reference word counts than the rest")

    def errors(cell: Cell) -> np.ndarray:  # (N,) mean errors over seeds
        per_seed = [[scores[u][1] + scores[u][2] + scores[u][3] for u in ids] for scores in cell.scores.values()]
        return np.mean(np.asarray(per_seed, dtype=np.float64), axis=0)

    return paired_bootstrap(errors(a), errors(b), ref_words, n_boot=n_boot)


def seed_deltas(a: Cell, b: Cell) -> str:
    """WER(a) - WER(b) for each seed both have, e.g. ``+2.1, -0.4`` (seed order)."""
    both = sorted(set(a.wers) & set(b.wers))
    return ", ".join(f"{a.wers[s] - b.wers[s]:+.1f}" for s in both) or DASH


# ----------------------------------------------------------------------------- setup facts
def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def corpus_line(data_dir: Path, base: str) -> str:
    marker = _read_json(data_dir / base / DONE)
    if not marker or "root" not in marker:
        return "unknown (no stage-1 marker in " + str(data_dir / base) + ")"
    root = Path(marker["root"])
    meta = _read_json(root / "corpus.json")
    if meta and "params" in meta:
        p = meta["params"]
        return (f"built-in synthetic audio-visual corpus, size `{p.get('size')}`, seed {p.get('seed')}, "
                f"grammar `{p.get('grammar')}` (`{root.name}`; train subset `{marker.get('train_subset')}`)")
    return f"LRS3 layout at `{root}` (train subset `{marker.get('train_subset')}`)"


def set_size(dump: Path, dset: str) -> str:
    path = dump / dset / "utt2num_samples"
    if not path.is_file():
        return f"{dset}: {DASH}"
    samples = [int(line.split()[1]) for line in path.read_text().splitlines() if line.strip()]
    speakers = len((dump / dset / "spk2utt").read_text().splitlines()) if (dump / dset / "spk2utt").is_file() else 0
    return f"{dset}: {len(samples)} utterances, {sum(samples) / 16000 / 3600:.2f} h, {speakers} speakers"


def _joined(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in sorted(values, key=str))


def training_summary(expdir: Path, variants, seeds) -> Tuple[str, Dict[str, float]]:
    """What the runs' config.yaml and train.log say of training: the settings (once for
    variants that share them), the finished runs with their epochs; and each variant's
    largest ``model_conf.modality_dropout`` (0 when no run sets it)."""
    groups: Dict[str, List[str]] = {}
    finished, dropout = [], {}
    for variant in variants:
        done, epochs, drops, noise = [], set(), set(), set()
        for seed in seeds:
            conf = run_config(expdir, variant, seed)
            if conf is not None:
                epochs.add(conf.get("max_epoch"))
                drops.add(float((conf.get("model_conf") or {}).get("modality_dropout", 0.0)))
                if conf.get("noise_scp"):
                    noise.add(f"p {conf.get('noise_apply_prob')}, SNR {conf.get('noise_db_range')} dB "
                              f"from `{conf['noise_scp']}`")
                else:
                    noise.add("none")
            log = run_dir(expdir, variant, seed) / "train.log"
            if log.is_file():
                m = re.search(r"The training was finished at (\d+) epochs", log.read_text(errors="replace"))
                if m:
                    done.append(int(m.group(1)))
        if not epochs:
            continue
        dropout[variant] = max(drops)
        settings = f"max_epoch {_joined(epochs)}, modality dropout {_joined(drops)}, training noise {_joined(noise)}"
        groups.setdefault(settings, []).append(variant)
        finished.append(f"`{variant}` {len(done)}" + (f" ({', '.join(map(str, done))})" if done else ""))
    if not groups:
        return DASH, dropout
    if len(groups) == 1:
        parts = [f"{next(iter(groups))} (every variant)"]
    else:
        parts = [f"{k} ({', '.join(f'`{v}`' for v in vs)})" for k, vs in groups.items()]
    return "; ".join(parts) + "; finished runs (epochs trained): " + ", ".join(finished), dropout


def wall_time(times: Path, variants: Sequence[str], seeds: Sequence[int]) -> List[str]:
    """Sums of ``kind<TAB>variant<TAB>seed<TAB>what<TAB>seconds`` lines by kind and variant.

    Only the lines of the report's variants and seeds count, and the shared ones (variant and seed ``-``).
    """
    if not times.is_file():
        return ["not recorded"]
    by_kind: Dict[str, float] = {}
    by_variant: Dict[str, float] = {}
    interrupted = []
    skipped = 0
    for lineno, line in enumerate(times.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        reason = None
        if len(parts) != 5:
            reason = f"{len(parts)} tab-separated fields, expected 5 (kind, variant, seed, what, seconds)"
        else:
            try:
                sec = float(parts[4])
            except ValueError:
                reason = f"seconds {parts[4]!r} is not a number"
        if reason:
            print(f"ablation_report: {times}:{lineno}: line left out of the wall time: {reason}", file=sys.stderr)
            skipped += 1
            continue
        kind, variant, seed, what, _ = parts
        if variant not in ("-", *variants) or seed not in ("-", *map(str, seeds)):
            continue
        if what.startswith("interrupted"):
            interrupted.append(sec)
        by_kind[kind] = by_kind.get(kind, 0.0) + sec
        if variant != "-":
            by_variant[variant] = by_variant.get(variant, 0.0) + sec
    total = sum(by_kind.values())
    out = [f"total {total / 3600:.2f} h ({', '.join(f'{k} {v / 60:.1f} min' for k, v in sorted(by_kind.items()))})"
           + (f", including {len(interrupted)} interrupted and resumed part(s), {sum(interrupted) / 60:.1f} min "
              "(see the 'interrupted' lines of the times file)" if interrupted else "")
           + (f"; {skipped} malformed line(s) of the times file left out" if skipped else "")]
    if by_variant:
        out.append(f"per variant (training + decoding, seed(s) {', '.join(map(str, seeds))}): "
                   + ", ".join(f"`{k}` {v / 60:.1f} min" for k, v in by_variant.items()))
    return out


def machine_line() -> str:
    cpu = cpu_name()
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # a broken CUDA setup must not stop the report
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {gpu}; {platform.system()} {platform.release()}, Python {platform.python_version()}"


# ----------------------------------------------------------------------------- figure
def plot(cells, variants, seeds, conds: List[Condition], noise: str, base: str, out: Path) -> bool:
    points = [c for c in conds if c.base == base and c.noise == noise]
    clean = next((c for c in conds if c.base == base and c.label == "clean"), None)
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snrs = [c.snr for c in points]
    step = (max(snrs) - min(snrs)) / max(len(snrs) - 1, 1) if len(snrs) > 1 else 5.0
    x_clean = max(snrs) + step
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = False
    for variant in variants:
        xs, ys, es = [], [], []
        for cond, x in [(c, c.snr) for c in points] + ([(clean, x_clean)] if clean else []):
            cell = cells.get((variant, cond))
            if cell is None or not cell.wers:
                continue
            mean, std = mean_std(list(cell.wers.values()))
            xs.append(x), ys.append(mean), es.append(std or 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=es if len(seeds) > 1 else None, marker="o", capsize=3, label=variant)
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ticks = snrs + ([x_clean] if clean else [])
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{s:g}" for s in snrs] + (["clean"] if clean else []))
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("WER (%)")
    ax.set_title(f"{base}: {noise} noise, audio-visual decoding"
                 + (f" (mean ± sd over {len(seeds)} seeds)" if len(seeds) > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------- report
def render(args, cells, conds, cis, png_rel: Optional[str]) -> str:
    n_seeds = len(args.seeds)
    training, dropout = training_summary(args.expdir, args.variants, args.seeds)
    lines = [
        "<!-- Generated by python -m espnet2_smile.bin.ablation_report; do not edit -->",
        "# Ablation study: word error rate (%)",
        "",
        "## Setup",
        "",
        *([f"- command (in the recipe folder): `{args.command}`"] if args.command else []),
        f"- corpus: {corpus_line(args.data_dir, args.test_sets[0])}",
        "- data (`dump/raw`; training and dev sets after the stage-4 length filter): "
        + "; ".join(set_size(args.dumpdir, d) for d in [args.train_set, args.valid_set, *args.test_sets]),
        f"- noisy test sets: {', '.join(args.noise_types) or DASH} at {', '.join(f'{s:g}' for s in args.snrs)} dB "
        "SNR (RMS over the utterance; noise files of the corpus's test noise, disjoint from training noise); "
        "video unchanged",
        f"- seeds: {', '.join(map(str, args.seeds))} (one training run per variant and seed)",
        f"- training: {training}",
        f"- decoding: `{args.inference_tag}_<modality>` (model selection and tuning on the dev set only; "
        "the test sets are decoded once)",
        "- wall time of the completed steps: " + "; ".join(wall_time(args.times, args.variants, args.seeds)),
        f"- machine: {machine_line()}",
        "",
        "## WER by condition",
        "",
        f"Mean ± sample standard deviation over seeds of sclite's `Sum/Avg` WER (%); "
        f"{DASH}: not decoded; n/a: the model has no video stream (its `clean` column is audio-only decoding). "
        "Columns after `clean` are audio-visual decoding of the noisy copies; "
        "`audio only` / `video only` decode the clean set with the other stream zeroed.",
        "",
    ]
    no_video = {v for v in args.variants if has_video(args.expdir, v, args.seeds) is False}
    for base in args.test_sets:
        bconds = [c for c in conds if c.base == base]
        if len(args.test_sets) > 1:
            lines += [f"### {base}", ""]
        lines.append("| variant | " + " | ".join(c.label for c in bconds) + " |")
        lines.append("|---|" + "---|" * len(bconds))
        for v in args.variants:
            row = []
            for c in bconds:
                text = format_cell(cells[(v, c)], n_seeds)
                if text == DASH and c.modality != "av" and v in no_video:
                    text = "n/a"
                row.append(text)
            lines.append(f"| `{v}` | " + " | ".join(row) + " |")
        lines.append("")
    single = {v for v in args.variants for c in conds if c.modality != "av" and cells[(v, c)].wers}
    never_dropped = [f"`{v}`" for v in args.variants if v in single and dropout.get(v, 0.0) == 0.0]
    if never_dropped:
        lines += [f"{', '.join(never_dropped)} trained without modality dropout: always with both streams, so "
                  f"{'its' if len(never_dropped) == 1 else 'their'} `audio only` / `video only` columns show how a "
                  "model that never saw a zeroed "
                  "stream copes with one, not what a single-modality system reaches.", ""]
    if png_rel:
        lines += [f"![WER against SNR, {args.plot_noise} noise]({png_rel})", ""]

    if args.reference not in args.variants:
        lines += [f"## Differences to `{args.reference}`", "",
                  f"`{args.reference}` is not among the variants of this study: no differences computed.", ""]
    else:
        lines += [
            f"## Differences to `{args.reference}` (paired bootstrap)",
            "",
            f"Δ = WER(variant) − WER(`{args.reference}`) in percentage points, from the per-utterance "
            "error counts of the same sclite reports (each system's mean over its seeds per utterance); "
            f"95% interval from {args.n_boot} paired resamples of the test utterances. Positive Δ: "
            f"the variant is worse than `{args.reference}`. The interval covers test-set sampling "
            "only; seed-to-seed variation shows in the standard deviations above and in the column "
            "`Δ by seed`: the difference of the sclite WERs of each seed alone (seed s of the variant "
            f"against seed s of `{args.reference}`; the pairing is by seed number only).",
            "",
        ]
    compared = []
    if args.reference in args.variants:
        compared = [a for a in ABLATIONS if a in args.variants and a != args.reference]
        compared += [v for v in args.variants if v != args.reference and v not in compared]
    for v in compared:
        rows = [(c, ci) for (variant, c), ci in cis.items() if variant == v]
        lines += [f"### `{v}` vs `{args.reference}`", ""]
        if not rows:
            lines += ["No condition decoded by both.", ""]
            continue
        lines.append(f"| condition | `{v}` | `{args.reference}` | Δ by seed | Δ | 95% CI | reading |")
        lines.append("|---|---|---|---|---|---|---|")
        inside, outside = [], []
        for c, ci in rows:
            name = c.label if len(args.test_sets) == 1 else f"{c.base}: {c.label}"
            if ci.contains_zero():
                reading = "CI contains 0: no difference shown"
                inside.append(name)
            else:
                reading = "worse" if ci.delta > 0 else "better"
                outside.append(f"{name} ({reading})")
            lines.append(
                f"| {name} | {format_cell(cells[(v, c)], n_seeds)} | {format_cell(cells[(args.reference, c)], n_seeds)} "
                f"| {seed_deltas(cells[(v, c)], cells[(args.reference, c)])} "
                f"| {ci.delta:+.1f} | [{ci.low:+.1f}, {ci.high:+.1f}] | {reading} |"
            )
        lines.append("")
        if inside:
            lines.append(f"The 95% interval contains 0 in {len(inside)} of {len(rows)} conditions "
                         f"({', '.join(inside)}): there the data do not show a difference between `{v}` and "
                         f"`{args.reference}` at this test-set size.")
        if outside:
            lines.append(f"The interval excludes 0 in {len(outside)} of {len(rows)} conditions: {', '.join(outside)}.")
        lines.append("")

    missing = [
        f"`{v}` seed {s}: {c.label}" + (f" ({c.base})" if len(args.test_sets) > 1 else "")
        for v in args.variants
        for c in conds
        for s in args.seeds
        if s not in cells[(v, c)].wers and not (c.modality != "av" and v in no_video)
    ]
    if missing:
        lines += ["## Missing results", "", f"{len(missing)} of the planned decodings have no sclite report yet:", ""]
        lines += [f"- {m}" for m in missing[:50]]
        if len(missing) > 50:
            lines.append(f"- ... and {len(missing) - 50} more")
        lines.append("")
    return "\n".join(lines)


def main(cmd=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expdir", type=Path, default=Path("exp"))
    parser.add_argument("--dumpdir", type=Path, default=Path("dump/raw"))
    parser.add_argument("--data_dir", type=Path, default=Path("data"))
    parser.add_argument("--train_set", default="train")
    parser.add_argument("--valid_set", default="dev")
    parser.add_argument("--variants", nargs="+", default=["smile", *ABLATIONS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--test_sets", nargs="+", default=["test"])
    parser.add_argument("--noise_types", nargs="*", default=["babble", "speech", "white"])
    parser.add_argument("--snrs", nargs="*", default=["-5", "0", "5", "10"])
    parser.add_argument("--modalities", nargs="+", default=["av", "audio", "video"], choices=["av", "audio", "video"])
    parser.add_argument("--inference_tag", default="decode", help="decode dirs are <tag>_<modality>")
    parser.add_argument("--reference", default="smile")
    parser.add_argument("--plot_noise", default="babble")
    parser.add_argument("--n_boot", type=int, default=10000)
    parser.add_argument("--times", type=Path, default=None, help="default: <expdir>/ablation_times.tsv")
    parser.add_argument("--out", type=Path, default=Path("RESULTS_ABLATION.md"))
    parser.add_argument("--png", type=Path, default=None, help="default: wer_vs_snr.png next to --out")
    parser.add_argument("--command", default="", help="the command line of the study, quoted in the report")
    args = parser.parse_args(cmd)
    try:
        args.noise_types = [n for n, _ in parse_type_list(args.noise_types)] if args.noise_types else []
        args.snrs = parse_snr_list(args.snrs) if args.noise_types else []
        if not args.expdir.is_dir():
            raise ValueError(f"{args.expdir} is not a directory")
        args.times = args.times or args.expdir / "ablation_times.tsv"
        conds = [c for base in args.test_sets for c in conditions(base, args.noise_types, args.snrs, args.modalities)]
        cells = load(args.expdir, args.variants, args.seeds, args.inference_tag, conds)
        cis: Dict[Tuple[str, Condition], BootstrapCI] = {}
        for v in args.variants:
            if v == args.reference or args.reference not in args.variants:
                continue
            for c in conds:
                a, b = cells[(v, c)], cells[(args.reference, c)]
                if a.wers and b.wers:
                    cis[(v, c)] = compare(a, b, f"{v} vs {args.reference}, {c.base} {c.label}", args.n_boot)
        png = args.png or args.out.with_name("wer_vs_snr.png")
        drawn = plot(cells, args.variants, args.seeds, conds, args.plot_noise, args.test_sets[0], png)
        png_rel = os.path.relpath(png, args.out.parent if str(args.out.parent) else ".") if drawn else None
        text = render(args, cells, conds, cis, png_rel)
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, args.out)
    except (OSError, ValueError) as e:
        print(f"ablation_report: {e}", file=sys.stderr)
        return 1
    print(f"ablation_report: wrote {args.out}" + (f" and {png}" if drawn else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
