"""Batched decoding across utterances: same n-best lists as ESPnet's per-utterance
BatchBeamSearch, independent of the batch composition, same files from the CLI."""

import math
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
import torch
import yaml

from helpers_model import TOKENS, build_model, make_args, make_batch, select, toy_config
from espnet2_smile.asr.batch_utt_beam_search import BatchUttBeamSearch, length_bound
from espnet2_smile.bin import avsr_inference, benchmark_decoding
from espnet2_smile.bin.avsr_inference import AVSpeech2Text

VARIANT = "smile"
FRAMES = (14, 9, 22, 6, 17)  # 25 fps video frames (= encoder frames) per utterance
EOS = len(TOKENS) - 1
TOL = 1e-4
IMPOSSIBLE = -1e8  # a score below: CTC's log-zero took part


@torch.no_grad()
def _sharpen(model, seed: int = 0) -> None:
    """Make a random model's searches differ between utterances: peaked output and
    CTC posteriors (a random model's are near-uniform), a source attention that
    matters, and an <eos> that hypotheses reach at different lengths."""
    g = torch.Generator().manual_seed(seed)
    model.decoder.output_layer.weight.normal_(0.0, 1.0, generator=g)
    model.decoder.output_layer.bias[model.eos] += 2.0
    model.ctc.ctc_lo.weight.normal_(0.0, 1.0, generator=g)
    for layer in model.decoder.decoders:
        layer.src_attn.linear_q.weight.mul_(8.0)
        layer.src_attn.linear_k.weight.mul_(8.0)
        layer.src_attn.linear_out.weight.mul_(4.0)


def _save(model, args, root: Path) -> Path:
    """config.yaml + model.pth, as a training run leaves them."""
    args.token_type = "char"
    args.bpemodel = None
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(vars(args)))
    torch.save(model.state_dict(), root / "model.pth")
    return root


def _save_model(root: Path, variant: str, seed: int = 0) -> Path:
    video = {} if variant == "audio_only" else {"video_frontend_conf": {"downsample": 2, "crop_size": 20}}
    # two decoder layers: the second one reads the first one's cache
    model, args = build_model(variant, seed=seed, decoder_conf={"num_blocks": 2}, **video)
    _sharpen(model, seed)
    return _save(model, args, root)


@pytest.fixture(scope="module")
def exp_dirs(tmp_path_factory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("batch_decoding")
    return {v: _save_model(root / v, v) for v in (VARIANT, "audio_only")}


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> Path:
    """A random toy Transformer LM (config.yaml + model.pth) over the toy tokens."""
    from espnet2.tasks.lm import LMTask

    root = tmp_path_factory.mktemp("lm")
    args = LMTask.get_parser().parse_args(["--token_list", "x"])
    args.token_list = list(TOKENS)
    args.lm = "transformer"
    args.lm_conf = {"pos_enc": None, "embed_unit": 16, "att_unit": 16, "head": 2, "unit": 32, "layer": 2}
    args.model_conf = {}
    torch.manual_seed(1)
    lm = LMTask.build_model(args)
    with torch.no_grad():
        lm.lm.decoder.weight.mul_(20.0)  # an LM that matters
    (root / "config.yaml").write_text(yaml.safe_dump(vars(args)))
    torch.save(lm.state_dict(), root / "model.pth")
    return root


def _s2t(exp: Path, **kw) -> AVSpeech2Text:
    kw.setdefault("lm_weight", 0.0)
    kw.setdefault("nbest", 100)  # every ended hypothesis
    return AVSpeech2Text(
        asr_train_config=exp / "config.yaml", asr_model_file=exp / "model.pth", batch_decoding=True, **kw
    )


def _batch(frames: Sequence[int] = FRAMES, seed: int = 3):
    return make_batch(frames=frames, text_lens=[1] * len(frames), seed=seed)


def _stock(s2t: AVSpeech2Text, batch, b: int):
    one = select(batch, b)
    return s2t(one["speech"][0], one["video"][0])


def _batched(s2t: AVSpeech2Text, batch, ids: Sequence[int]):
    sub = [select(batch, b) for b in ids]
    speech = torch.nn.utils.rnn.pad_sequence([u["speech"][0] for u in sub], batch_first=True)
    video = torch.nn.utils.rnn.pad_sequence([u["video"][0] for u in sub], batch_first=True)
    return s2t.decode_batch(
        speech,
        torch.cat([u["speech_lengths"] for u in sub]),
        video,
        torch.cat([u["video_lengths"] for u in sub]),
    )


def _close(a, b, tol: float) -> bool:
    """Equal within ``tol``, or float32 rounding of large sums (relative 1e-6)."""
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=tol)


def _assert_same(ref, got, what: str, tol: float = TOL) -> None:
    """Same n-best list: token ids, total score and every scorer's score.

    Hypotheses that CTC rules out (more tokens than frames left, or a token outside
    the pre-beam: CTC's log-zero -1e10 in the score) tie with each other in float32,
    and either search may keep any of them: only their number is compared.
    """
    assert len(ref) == len(got), what
    ref = [r for r in ref if float(r[3].score) > IMPOSSIBLE]
    got = [g for g in got if float(g[3].score) > IMPOSSIBLE]
    assert [r[2] for r in ref] == [g[2] for g in got], what
    assert [r[0] for r in ref] == [g[0] for g in got], what
    for r, g in zip(ref, got):
        assert r[3].yseq.tolist() == g[3].yseq.tolist(), what
        assert _close(r[3].score, g[3].score, tol), (what, float(r[3].score), float(g[3].score))
        assert set(r[3].scores) == set(g[3].scores), what
        for k in r[3].scores:
            assert _close(r[3].scores[k], g[3].scores[k], tol), (what, k)


# ----------------------------------------------------------------- the search
@pytest.mark.parametrize("ctc_weight", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("beam_size", [1, 3, 5, 8])
def test_same_nbest_as_espnet_beam_search(exp_dirs, beam_size, ctc_weight):
    s2t = _s2t(exp_dirs[VARIANT], beam_size=beam_size, ctc_weight=ctc_weight, penalty=0.2)
    search = s2t.batch_search
    # pre-beam as ESPnet's: int(1.5 * beam) < V=10 with CTC and a decoder
    assert search.do_pre_beam == (0.0 < ctc_weight < 1.0 and int(1.5 * beam_size) < len(TOKENS))
    # source keys/values computed once per utterance, in both decoder layers
    assert len(search.src_attns) == (2 if ctc_weight < 1.0 else 0)
    batch = _batch()
    got = _batched(s2t, batch, range(len(FRAMES)))
    assert all("forward_qkv" not in vars(a) for a in search.src_attns)  # restored
    lengths = set()
    for b in range(len(FRAMES)):
        ref = _stock(s2t, batch, b)
        assert ref, f"utterance {b}: the stock search ended no hypothesis"
        _assert_same(ref, got[b], f"utterance {b}")
        lengths.update(len(r[2]) for r in ref)
    # not a vacuous comparison: outputs of several lengths, several best outputs
    assert len(lengths) >= 2, lengths
    assert len({tuple(got[b][0][2]) for b in range(len(FRAMES))}) >= 2


@pytest.mark.parametrize(
    "maxlenratio,minlenratio",
    [(0.0, 0.0), (0.5, 0.0), (-4.0, 0.0), (0.0, 0.3), (0.3, 0.2), (0.2, 0.5)],
    ids=["end_detect", "maxratio", "maxconst", "minratio", "max_min", "min_retry"],
)
def test_length_bounds_and_end_detection(exp_dirs, maxlenratio, minlenratio):
    s2t = _s2t(exp_dirs[VARIANT], beam_size=4, ctc_weight=0.3, maxlenratio=maxlenratio, minlenratio=minlenratio)
    batch = _batch()
    got = _batched(s2t, batch, range(len(FRAMES)))
    for b, frames in enumerate(FRAMES):
        ref = _stock(s2t, batch, b)
        assert ref, b
        _assert_same(ref, got[b], f"utterance {b}")
        out_lens = [len(r[3].yseq) - 2 for r in ref]
        if maxlenratio != 0.0:
            assert max(out_lens) <= length_bound(maxlenratio, frames, True)
        if minlenratio == 0.5:  # nothing fits: found only by the retries with smaller minlenratio
            assert length_bound(minlenratio, frames, False) > length_bound(maxlenratio, frames, True) - 1


def test_no_ended_hypothesis_gives_empty_lists(exp_dirs):
    # minlen 5 > maxlen 2, and a negative minlenratio is not retried (as ESPnet)
    s2t = _s2t(exp_dirs[VARIANT], beam_size=3, ctc_weight=0.3, maxlenratio=-2.0, minlenratio=-5.0)
    batch = _batch()
    assert _stock(s2t, batch, 0) == []
    assert _batched(s2t, batch, range(len(FRAMES))) == [[] for _ in FRAMES]


def test_empty_encoder_output_has_no_hypothesis(exp_dirs):
    s2t = _s2t(exp_dirs[VARIANT], beam_size=3, ctc_weight=0.3)
    batch = _batch()
    enc, lens = s2t.encode_batch(batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"])
    lens = lens.clone()
    lens[1] = 0  # ESPnet's BeamSearch runs no step: maxlen 0
    got = s2t.batch_search(enc, lens, 0.0, 0.0)
    assert got[1] == []
    with torch.no_grad():
        ref = s2t.beam_search(enc[0, : lens[0]], 0.0, 0.0)
    assert ref
    _assert_same(s2t.hyps_to_results(ref), s2t.hyps_to_results(got[0]), "utterance 0")


@pytest.mark.parametrize("normalize_length", [False, True])
def test_with_lm_and_length_normalisation(exp_dirs, lm_dir, normalize_length):
    s2t = _s2t(
        exp_dirs[VARIANT], beam_size=4, ctc_weight=0.4, penalty=0.1, lm_weight=0.5,
        lm_train_config=lm_dir / "config.yaml", lm_file=lm_dir / "model.pth",
        normalize_length=normalize_length,
    )
    assert "lm" in s2t.batch_search.full_scorers
    batch = _batch()
    got = _batched(s2t, batch, range(len(FRAMES)))
    for b in range(len(FRAMES)):
        ref = _stock(s2t, batch, b)
        _assert_same(ref, got[b], f"utterance {b}")
        assert abs(float(ref[0][3].scores["lm"])) > 0.1  # the LM took part


def test_audio_only_model(exp_dirs):
    s2t = _s2t(exp_dirs["audio_only"], beam_size=3, ctc_weight=0.5)
    batch = _batch()
    got = _batched(s2t, batch, range(len(FRAMES)))
    for b in range(len(FRAMES)):
        _assert_same(_stock(s2t, batch, b), got[b], f"utterance {b}")


@pytest.mark.parametrize("modality", ["av", "audio", "video"])
def test_batched_encoder_output_does_not_depend_on_padding(exp_dirs, modality):
    s2t = _s2t(exp_dirs[VARIANT], beam_size=2, ctc_weight=0.3, modality=modality)
    batch = _batch()
    enc, lens = s2t.encode_batch(batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"])
    assert lens.tolist() == list(FRAMES)
    for b in range(len(FRAMES)):
        one = select(batch, b)
        alone, alone_lens = s2t.encode_batch(
            one["speech"], one["speech_lengths"], one["video"], one["video_lengths"]
        )
        assert int(alone_lens[0]) == FRAMES[b]
        torch.testing.assert_close(enc[b, : FRAMES[b]], alone[0], atol=1e-5, rtol=0)


def test_results_do_not_depend_on_batch_composition(exp_dirs):
    s2t = _s2t(exp_dirs[VARIANT], beam_size=4, ctc_weight=0.3)
    batch = _batch()
    n = len(FRAMES)
    reference = _batched(s2t, batch, range(n))
    for groups in ([[b] for b in range(n)], [[4, 2], [0, 3, 1]], [list(reversed(range(n)))]):
        for group in groups:
            for b, res in zip(group, _batched(s2t, batch, group)):
                _assert_same(reference[b], res, f"utterance {b} in {group}")


def test_unsupported_settings_are_clear_errors(exp_dirs):
    s2t = _s2t(exp_dirs[VARIANT], beam_size=3, ctc_weight=0.3)
    search = s2t.batch_search
    common = dict(weights=search.weights, vocab_size=len(TOKENS), sos=EOS, eos=EOS)
    with pytest.raises(ValueError, match="Transformer decoder"):
        BatchUttBeamSearch(torch.nn.Linear(2, 2), search.ctc, {}, beam_size=3, **common)
    with pytest.raises(ValueError, match="does not support the scorer 'ngram'"):
        BatchUttBeamSearch(search.decoder, search.ctc, {"ngram": object()}, beam_size=3, **common)
    with pytest.raises(ValueError, match="beam_size must be in"):
        BatchUttBeamSearch(search.decoder, search.ctc, {}, beam_size=len(TOKENS) + 1, **common)
    with pytest.raises(RuntimeError, match="batch_decoding=True"):
        AVSpeech2Text(
            asr_train_config=exp_dirs[VARIANT] / "config.yaml",
            asr_model_file=exp_dirs[VARIANT] / "model.pth",
        ).decode_batch(torch.zeros(1, 640), torch.tensor([640]))


# ----------------------------------------------------------------- the CLI
def _write_tiny_model(tiny_av_data: Path, root: Path) -> Path:
    """A toy model over the tiny data's token list."""
    from espnet2_smile.tasks.avsr import AVSRTask

    args = make_args(toy_config(VARIANT, video_frontend_conf={"downsample": 2, "crop_size": 20}))
    args.token_list = (tiny_av_data / "tokens.txt").read_text().split()
    torch.manual_seed(0)
    model = AVSRTask.build_model(args)
    _sharpen(model)
    return _save(model, args, root)


def _cli(exp: Path, data: Path, out: Path, *extra) -> None:
    avsr_inference.main([
        "--asr_train_config", str(exp / "config.yaml"), "--asr_model_file", str(exp / "model.pth"),
        "--data_path_and_name_and_type", f"{data / 'wav.scp'},speech,sound",
        "--data_path_and_name_and_type", f"{data / 'video.scp'},video,kaldi_ark",
        "--output_dir", str(out), "--ngpu", "0", "--lm_weight", "0", *map(str, extra),
    ])


def _read(path: Path) -> List[List[str]]:
    return [line.split(" ", 1) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("extra", [
    ["--beam_size", 3, "--ctc_weight", 0.3, "--nbest", 2],
    ["--beam_size", 2, "--ctc_weight", 0.3, "--maxlenratio", -2, "--minlenratio", -5],  # no hypothesis ends
], ids=["nbest2", "empty"])
def test_cli_writes_the_stock_files(tiny_av_data: Path, tmp_path: Path, extra):
    exp = _write_tiny_model(tiny_av_data, tmp_path / "exp")
    data = tiny_av_data / "train"
    keys = [line.split()[0] for line in (data / "wav.scp").read_text().splitlines()]
    key_file = tmp_path / "keys"
    subset = [keys[i] for i in (0, 2, 3, 5, 6, 7)]
    key_file.write_text("".join(f"{k}\n" for k in subset))
    stock, batched = tmp_path / "stock", tmp_path / "batched"
    _cli(exp, data, stock, "--key_file", key_file, *extra)
    _cli(exp, data, batched, "--key_file", key_file, "--batch_decoding", "true", "--batch_size", 4, *extra)
    nbest = int(extra[extra.index("--nbest") + 1]) if "--nbest" in extra else 1
    n_hyps = 0
    for n in range(1, nbest + 1):
        for name in ("text", "token", "token_int"):
            ref = (stock / f"{n}best_recog" / name).read_text()
            assert (batched / f"{n}best_recog" / name).read_text() == ref, (n, name)
            assert [line[0] for line in _read(stock / f"{n}best_recog" / name)] == subset
        ref_scores = _read(stock / f"{n}best_recog" / "score")
        got_scores = _read(batched / f"{n}best_recog" / "score")
        assert [k for k, _ in got_scores] == subset
        for (k, a), (_, b) in zip(ref_scores, got_scores):
            if a == "nan":
                assert b == "nan", k
            else:
                n_hyps += 1
                assert abs(float(a) - float(b)) <= TOL, (k, a, b)
    if "--minlenratio" in extra:
        assert n_hyps == 0
        assert all(len(line) == 1 or line[1] == "" for line in _read(batched / "1best_recog" / "text"))
    else:
        assert n_hyps == nbest * len(subset)
        assert any(line[1:] != [""] for line in _read(batched / "1best_recog" / "token"))


def test_cli_option_errors(tiny_av_data: Path, tmp_path: Path):
    exp = _write_tiny_model(tiny_av_data, tmp_path / "exp")
    data = tiny_av_data / "test"
    with pytest.raises(ValueError, match="--batch_size > 1 needs --batch_decoding true"):
        _cli(exp, data, tmp_path / "out", "--batch_size", 2)
    with pytest.raises(ValueError, match="--batch_size must be >= 1"):
        _cli(exp, data, tmp_path / "out", "--batch_size", 0, "--batch_decoding", "true")


# ----------------------------------------------------------------- the benchmark
def test_word_errors():
    assert benchmark_decoding.word_errors("a b c d", "a x c") == (2, 4)  # 1 sub + 1 del
    assert benchmark_decoding.word_errors("a b", "a b b c") == (2, 2)  # 2 ins
    assert benchmark_decoding.word_errors("a  b", " a b ") == (0, 2)
    assert benchmark_decoding.word_errors("", "a") == (1, 0)
    errors, words = benchmark_decoding.corpus_wer({"u1": "a b c", "u2": "d"}, {"u1": "a c", "u2": ""})
    assert (errors, words) == (2, 4)


def test_benchmark_script(tiny_av_data: Path, tmp_path: Path):
    exp = _write_tiny_model(tiny_av_data, tmp_path / "exp")
    decode_config = tmp_path / "decode.yaml"
    decode_config.write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "lm_weight": 0.0, "nbest": 1}))
    out = tmp_path / "bench"
    report = benchmark_decoding.main([
        "--asr_train_config", str(exp / "config.yaml"), "--asr_model_file", str(exp / "model.pth"),
        "--data_dir", str(tiny_av_data / "train"), "--decode_config", str(decode_config),
        "--batch_size", "3", "--num_utts", "5", "--output_dir", str(out),
    ])
    assert report["num_utts"] == 5 and report["ref_words"] == 15
    for path in ("stock", "batched"):
        assert report[path]["wall_s"] > 0
        assert 0.0 <= report[path]["wer"] and math.isfinite(report[path]["wer"])
        assert len((out / path / "1best_recog" / "text").read_text().splitlines()) == 5
    assert report["speedup"] == pytest.approx(report["stock"]["wall_s"] / report["batched"]["wall_s"])
    assert report["identical_hyps"] == 5
    assert (out / "benchmark.json").is_file() and "speed-up" in (out / "benchmark.md").read_text()
