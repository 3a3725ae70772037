#!/usr/bin/env python3
"""Decode audio-visual utterances with ESPnet's beam search (CTC + attention [+ LM]).

Same command line and output layout as ``espnet2.bin.asr_inference``, plus
``--modality av|audio|video`` (decode with one stream's features zeroed):

    python -m espnet2_smile.bin.avsr_inference \\
        --asr_train_config exp/asr/config.yaml --asr_model_file exp/asr/valid.acc.ave.pth \\
        --data_path_and_name_and_type dump/raw/test/wav.scp,speech,sound \\
        --data_path_and_name_and_type dump/raw/test/video.scp,video,kaldi_ark \\
        --output_dir exp/asr/decode/test --modality av

writes ``<output_dir>/1best_recog/{text,token,token_int,score}`` with one line for
every utterance (an utterance without a finished hypothesis gets an empty one).

Batched decoding (``--batch_decoding true --batch_size N``): the default decodes one
utterance at a time with ESPnet's BatchBeamSearch. With ``--batch_decoding true``,
the utterances are sorted by length (longest first) and decoded N at a time: one
encoder pass on the padded batch, then
:class:`espnet2_smile.asr.batch_utt_beam_search.BatchUttBeamSearch`, the same joint
CTC/attention search (same decode config keys, same n-best lists up to float
rounding) over N utterances x ``beam_size`` hypotheses. Utterances are read by key
(ESPnet's ``ESPnetDataset``), and the output files are written, in the input order
and with the stock path's lines, when all are decoded. The batched path supports
Transformer decoders, CTC, the length bonus and an LM (``--lm_train_config``), not
n-gram LMs.
"""

import logging
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from typeguard import typechecked

from espnet2_smile.asr.batch_utt_beam_search import BatchUttBeamSearch
from espnet2_smile.asr.espnet_model import MODALITY_CHOICES
from espnet2_smile.tasks.avsr import AVSRTask
from espnet2_smile.utils.checkpoint import weights_only_loads
import espnet2.bin.asr_inference as asr_inference
from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.torch_utils.device_funcs import to_device
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet2.train.dataset import ESPnetDataset
from espnet2.utils.types import str2bool
from espnet.nets.beam_search import Hypothesis
from espnet.utils.cli_utils import get_commandline_args


class AVSpeech2Text(asr_inference.Speech2Text):
    """ESPnet's Speech2Text for an audio-visual model.

    The model is built by :class:`AVSRTask` (strict checkpoint loading); scorers,
    beam search (BatchBeamSearch where possible), LM fusion, tokenizer and
    output conversion are ESPnet's.

    With ``batch_decoding=True`` it also decodes padded batches of utterances
    (:meth:`decode_batch`) with :class:`BatchUttBeamSearch`, built from the same beam
    search, so both use the same scorers, weights and settings.

    Examples:
        >>> s2t = AVSpeech2Text("exp/asr/config.yaml", "exp/asr/valid.acc.ave.pth")
        >>> text, token, token_int, hyp = s2t(speech, video)[0]
    """

    def __init__(self, *args, modality: str = "av", batch_decoding: bool = False, **kwargs):
        if modality not in MODALITY_CHOICES:
            raise ValueError(f"modality must be one of {MODALITY_CHOICES}, got {modality!r}")
        # Speech2Text looks its task class up in its module at call time.
        original = asr_inference.ASRTask
        asr_inference.ASRTask = AVSRTask
        try:
            super().__init__(*args, **kwargs)
        finally:
            asr_inference.ASRTask = original
        self.modality = modality
        self.batch_search: Optional[BatchUttBeamSearch] = None
        if batch_decoding:
            if self.beam_search is None:
                raise ValueError("batched decoding needs the joint CTC/attention beam search")
            self.batch_search = BatchUttBeamSearch.from_beam_search(self.beam_search)

    @torch.no_grad()
    @typechecked
    def __call__(
        self,
        speech: Union[torch.Tensor, np.ndarray],
        video: Union[torch.Tensor, np.ndarray],
    ) -> asr_inference.ListOfHypothesis:
        """Decode one utterance.

        Args:
            speech: (L,) waveform at 16 kHz.
            video: (T, H, W) mouth-ROI frames, values in [0, 255].

        Returns:
            n-best list of (text, token, token_int, hyp); empty if no hypothesis ended.
        """
        dtype = getattr(torch, self.dtype)
        speech = torch.as_tensor(speech).to(dtype).unsqueeze(0)  # (1, L)
        video = torch.as_tensor(video).to(dtype).unsqueeze(0)  # (1, T, H, W)
        batch = {
            "speech": speech,
            "speech_lengths": torch.tensor([speech.size(1)]),
            "video": video,
            "video_lengths": torch.tensor([video.size(1)]),
        }
        logging.info(f"speech length: {speech.size(1)}, video frames: {video.size(1)}")
        batch = to_device(batch, device=self.device)
        enc, _ = self.asr_model.encode(**batch, modality=self.modality)
        assert enc.size(0) == 1, enc.shape
        return self._decode_single_sample(enc[0])

    @torch.no_grad()
    def encode_batch(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        utt_id: Optional[Sequence[str]] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encoder output (B, T, D) and lengths (B,) of a padded batch (speech (B, L),
        video (B, T, H, W)), with this decoder's modality."""
        dtype = getattr(torch, self.dtype)
        batch = {"speech": speech.to(dtype), "speech_lengths": speech_lengths}
        if video is not None:
            batch.update(video=video.to(dtype), video_lengths=video_lengths)
        batch = to_device(batch, device=self.device)
        return self.asr_model.encode(**batch, utt_id=utt_id, modality=self.modality)

    @torch.no_grad()
    def decode_batch(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        utt_id: Optional[Sequence[str]] = None,
    ) -> List[asr_inference.ListOfHypothesis]:
        """Decode a padded batch of utterances at once (needs ``batch_decoding=True``).

        Returns:
            Per utterance, its n-best list as :meth:`__call__` returns it.
        """
        if self.batch_search is None:
            raise RuntimeError("decode_batch needs AVSpeech2Text(..., batch_decoding=True)")
        enc, enc_lens = self.encode_batch(speech, speech_lengths, video, video_lengths, utt_id)
        nbest = self.batch_search(enc, enc_lens, self.maxlenratio, self.minlenratio)
        return [self.hyps_to_results(hyps[: self.nbest]) for hyps in nbest]

    def hyps_to_results(self, hyps: Sequence[Hypothesis]) -> asr_inference.ListOfHypothesis:
        """(text, token, token_int, hyp) of each hypothesis, as Speech2Text returns
        them: without ``<sos>``/``<eos>`` and blanks (id 0), text from the tokenizer."""
        results = []
        for hyp in hyps:
            token_int = [t for t in hyp.yseq[1:-1].tolist() if t != 0]
            token = self.converter.ids2tokens(token_int)
            text = self.tokenizer.tokens2text(token) if self.tokenizer is not None else None
            results.append((text, token, token_int, hyp))
        return results


def write_results(writer: DatadirWriter, key: str, results, nbest: int) -> None:
    """``<n>best_recog/{token,token_int,score,text}`` lines of one utterance; an empty
    line (score ``nan``) where it has fewer than ``nbest`` hypotheses."""
    if not results:
        logging.warning(f"utterance {key}: no hypothesis ended; writing an empty one")
    for n in range(1, nbest + 1):
        writer_n = writer[f"{n}best_recog"]
        if n <= len(results):
            text, token, token_int, hyp = results[n - 1]
            score = str(float(hyp.score))
        else:
            text, token, token_int, score = "", [], [], "nan"
        writer_n["token"][key] = " ".join(token)
        writer_n["token_int"][key] = " ".join(map(str, token_int))
        writer_n["score"][key] = score
        writer_n["text"][key] = text if text is not None else ""


def read_keys(
    data_path_and_name_and_type: Sequence[Tuple[str, str, str]], key_file: Optional[str]
) -> List[str]:
    """Utterance ids in decoding order: the key file's first column, else the first
    data file's (as ESPnet's streaming iterator)."""
    path = key_file if key_file is not None else data_path_and_name_and_type[0][0]
    with open(path, encoding="utf-8") as f:
        return [line.split(maxsplit=1)[0] for line in f if line.strip()]


def decode_batched(
    speech2text: AVSpeech2Text,
    data_path_and_name_and_type: Sequence[Tuple[str, str, str]],
    key_file: Optional[str],
    batch_size: int,
    dtype: str,
    allow_variable_data_keys: bool,
) -> Dict[str, asr_inference.ListOfHypothesis]:
    """Decode every utterance in batches of ``batch_size`` sorted by length.

    Utterances are read by key twice: once for the length of the first input (no
    preprocessing), once for decoding, so memory holds one batch at a time.
    """
    train_args = speech2text.asr_train_args
    dataset = ESPnetDataset(
        data_path_and_name_and_type,
        preprocess=AVSRTask.build_preprocess_fn(train_args, False),
        float_dtype=dtype,
    )
    AVSRTask.check_task_requirements(dataset, allow_variable_data_keys, train=False, inference=True)
    collate = AVSRTask.build_collate_fn(train_args, False)
    keys = read_keys(data_path_and_name_and_type, key_file)
    if len(set(keys)) != len(keys):
        raise ValueError("duplicated utterance ids in the key list")
    first = dataset.loader_dict[data_path_and_name_and_type[0][1]]
    lengths = {}
    for key in keys:
        if key not in first:
            raise ValueError(f"utterance {key} is not in {data_path_and_name_and_type[0][0]}")
        lengths[key] = len(first[key])
    order = sorted(keys, key=lambda k: -lengths[k])  # stable: ties keep the input order
    results: Dict[str, asr_inference.ListOfHypothesis] = {}
    start = time.perf_counter()
    for n in range(0, len(order), batch_size):
        uids, batch = collate([dataset[k] for k in order[n : n + batch_size]])
        nbest = speech2text.decode_batch(
            batch["speech"],
            batch["speech_lengths"],
            batch.get("video"),
            batch.get("video_lengths"),
            utt_id=list(uids),
        )
        results.update(zip(uids, nbest))
        logging.info(
            f"decoded {len(results)}/{len(order)} utterances "
            f"({time.perf_counter() - start:.1f} s)"
        )
    return results


def inference(
    output_dir: str,
    batch_size: int,
    dtype: str,
    ngpu: int,
    seed: int,
    num_workers: int,
    log_level: Union[int, str],
    data_path_and_name_and_type: Sequence[Tuple[str, str, str]],
    key_file: Optional[str],
    allow_variable_data_keys: bool,
    modality: str,
    nbest: int,
    batch_decoding: bool = False,
    model_tag: Optional[str] = None,
    word_lm_train_config: Optional[str] = None,
    word_lm_file: Optional[str] = None,
    **speech2text_kwargs,
):
    logging.basicConfig(
        level=log_level,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    if batch_size > 1 and not batch_decoding:
        raise ValueError("--batch_size > 1 needs --batch_decoding true")
    if ngpu > 1:
        raise NotImplementedError("only single-device decoding is supported")
    if model_tag is not None:
        raise NotImplementedError("--model_tag is not supported: give --asr_model_file")
    if word_lm_train_config is not None or word_lm_file is not None:
        raise NotImplementedError("word LMs are not supported")
    for flag in ("streaming", "multi_asr", "hugging_face_decoder"):
        if speech2text_kwargs.get(flag):
            raise NotImplementedError(f"--{flag} is not supported for audio-visual models")
    set_all_random_seed(seed)

    speech2text = AVSpeech2Text(
        device="cuda" if ngpu >= 1 else "cpu",
        dtype=dtype,
        nbest=nbest,
        batch_size=1,  # Speech2Text's setting of its own one-utterance search
        modality=modality,
        batch_decoding=batch_decoding,
        **speech2text_kwargs,
    )
    if batch_decoding:
        keys = read_keys(data_path_and_name_and_type, key_file)
        results = decode_batched(
            speech2text, data_path_and_name_and_type, key_file, batch_size, dtype,
            allow_variable_data_keys,
        )
        with DatadirWriter(output_dir) as writer:
            for key in keys:
                write_results(writer, key, results[key], nbest)
        return
    train_args = speech2text.asr_train_args
    loader = AVSRTask.build_streaming_iterator(
        data_path_and_name_and_type,
        dtype=dtype,
        batch_size=batch_size,
        key_file=key_file,
        num_workers=num_workers,
        preprocess_fn=AVSRTask.build_preprocess_fn(train_args, False),
        collate_fn=AVSRTask.build_collate_fn(train_args, False),
        allow_variable_data_keys=allow_variable_data_keys,
        inference=True,
    )
    with DatadirWriter(output_dir) as writer:
        for keys, batch in loader:
            assert len(keys) == 1, keys
            key = keys[0]
            inputs = {k: v[0] for k, v in batch.items() if not k.endswith("_lengths")}
            results = speech2text(speech=inputs["speech"], video=inputs["video"])
            write_results(writer, key, results, nbest)


def get_parser():
    parser = asr_inference.get_parser()
    parser.description = "Audio-visual ASR decoding"
    parser.add_argument(
        "--modality",
        type=str,
        default="av",
        choices=MODALITY_CHOICES,
        help="Streams to decode with: av, or audio/video with the other stream zeroed",
    )
    parser.add_argument(
        "--batch_decoding",
        type=str2bool,
        default=False,
        help="Decode --batch_size utterances at once (sorted by length) with the batched "
        "joint CTC/attention search; false: ESPnet's beam search, one utterance at a time",
    )
    return parser


def main(cmd=None):
    print(get_commandline_args(), file=sys.stderr)
    args = get_parser().parse_args(cmd)
    kwargs = vars(args)
    kwargs.pop("config", None)
    # every checkpoint this run loads (the model and ESPnet's LM loading) is weights-only
    with weights_only_loads():
        inference(**kwargs)


if __name__ == "__main__":
    main()
