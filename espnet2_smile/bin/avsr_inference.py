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
"""

import logging
import sys
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from typeguard import typechecked

from espnet2_smile.asr.espnet_model import MODALITY_CHOICES
from espnet2_smile.tasks.avsr import AVSRTask
import espnet2.bin.asr_inference as asr_inference
from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.torch_utils.device_funcs import to_device
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet.utils.cli_utils import get_commandline_args


class AVSpeech2Text(asr_inference.Speech2Text):
    """ESPnet's Speech2Text for an audio-visual model.

    The model is built by :class:`AVSRTask` (strict checkpoint loading); scorers,
    beam search (BatchBeamSearch where possible), LM fusion, tokenizer and
    output conversion are ESPnet's.

    Examples:
        >>> s2t = AVSpeech2Text("exp/asr/config.yaml", "exp/asr/valid.acc.ave.pth")
        >>> text, token, token_int, hyp = s2t(speech, video)[0]
    """

    def __init__(self, *args, modality: str = "av", **kwargs):
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
    model_tag: Optional[str] = None,
    word_lm_train_config: Optional[str] = None,
    word_lm_file: Optional[str] = None,
    **speech2text_kwargs,
):
    logging.basicConfig(
        level=log_level,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    if batch_size > 1:
        raise NotImplementedError("only --batch_size 1 is supported")
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
        batch_size=batch_size,
        modality=modality,
        **speech2text_kwargs,
    )
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
    return parser


def main(cmd=None):
    print(get_commandline_args(), file=sys.stderr)
    args = get_parser().parse_args(cmd)
    kwargs = vars(args)
    kwargs.pop("config", None)
    inference(**kwargs)


if __name__ == "__main__":
    main()
